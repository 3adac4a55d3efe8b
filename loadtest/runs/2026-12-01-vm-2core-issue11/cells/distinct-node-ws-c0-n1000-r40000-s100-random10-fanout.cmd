taskset -c 0 node loadtest/peers/node-ws/server.js --listen 127.0.0.1:35323 --symbols 100 --rate 40000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:35323/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe random:10 --rate 40000 --symbols 100 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/distinct-node-ws-c0-n1000-r40000-s100-random10-fanout
