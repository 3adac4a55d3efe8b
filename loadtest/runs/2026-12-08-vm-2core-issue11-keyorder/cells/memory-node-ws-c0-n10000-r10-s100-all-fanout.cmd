taskset -c 0 node /work/main/loadtest/peers/node-ws/server.js --listen 127.0.0.1:50845 --symbols 100 --rate 10
taskset -c 1 /work/main/target/release/loadtest --url ws://127.0.0.1:50845/ws --clients 10000 --duration 10 --warmup 2 --scenario fanout --subscribe \* --rate 10 --symbols 100 --out loadtest/runs/2026-12-08-vm-2core-issue11-keyorder/cells/memory-node-ws-c0-n10000-r10-s100-all-fanout
