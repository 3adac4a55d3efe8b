taskset -c 0 target/release/tickcast --listen 127.0.0.1:36039 --io-threads 1 --synthetic-symbols 100 --synthetic-rate 5000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:36039/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 5000 --symbols 100 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/star-tickcast-c0-n1000-r5000-s100-all-fanout
