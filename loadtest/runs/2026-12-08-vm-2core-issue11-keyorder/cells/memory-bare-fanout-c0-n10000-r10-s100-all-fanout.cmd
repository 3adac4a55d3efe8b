taskset -c 0 /work/main/target/peers/release/peer-bare-fanout --listen 127.0.0.1:51635 --symbols 100 --rate 10
taskset -c 1 /work/main/target/release/loadtest --url ws://127.0.0.1:51635/ws --clients 10000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 10 --symbols 100 --out loadtest/runs/2026-12-08-vm-2core-issue11-keyorder/cells/memory-bare-fanout-c0-n10000-r10-s100-all-fanout
