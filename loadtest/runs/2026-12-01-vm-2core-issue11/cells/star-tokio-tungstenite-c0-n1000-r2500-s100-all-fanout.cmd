taskset -c 0 target/peers/release/peer-tokio-tungstenite --listen 127.0.0.1:60767 --symbols 100 --rate 2500 --capacity 4096
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:60767/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 2500 --symbols 100 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/star-tokio-tungstenite-c0-n1000-r2500-s100-all-fanout
