taskset -c 0 node loadtest/peers/node-ws/server.js --listen 127.0.0.1:50281 --symbols 10000 --rate 200000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:50281/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe random:100 --rate 200000 --symbols 10000 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/large-node-ws-c0-n1000-r200000-s10000-random100-fanout
