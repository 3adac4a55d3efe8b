taskset -c 0 target/peers/release/peer-tokio-tungstenite --listen 127.0.0.1:36809 --symbols 100 --rate 10 --capacity 4096
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:36809/ws --clients 10000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 10 --symbols 100 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/memory-tokio-tungstenite-c0-n10000-r10-s100-all-fanout
