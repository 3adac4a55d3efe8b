taskset -c 0 node /work/main/loadtest/peers/node-ws/server.js --listen 127.0.0.1:35101 --symbols 100 --rate 10000
taskset -c 1 /work/main/target/release/loadtest --url ws://127.0.0.1:35101/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 10000 --symbols 100 --out loadtest/runs/2026-12-08-vm-2core-issue11-keyorder/cells/star-node-ws-c0-n1000-r10000-s100-all-fanout
