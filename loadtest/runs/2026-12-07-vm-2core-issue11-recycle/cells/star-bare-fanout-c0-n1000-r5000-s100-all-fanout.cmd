taskset -c 0 /work/main/target/peers/release/peer-bare-fanout --listen 127.0.0.1:40159 --symbols 100 --rate 5000
taskset -c 1 /work/main/target/release/loadtest --url ws://127.0.0.1:40159/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 5000 --symbols 100 --out loadtest/runs/2026-12-07-vm-2core-issue11-recycle/cells/star-bare-fanout-c0-n1000-r5000-s100-all-fanout
