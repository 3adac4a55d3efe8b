taskset -c 0 target/release/tickcast --listen 127.0.0.1:34363 --io-threads 1 --synthetic-symbols 100 --synthetic-rate 10
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:34363/ws --clients 10000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 10 --symbols 100 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/memory-tickcast-c0-n10000-r10-s100-all-fanout
