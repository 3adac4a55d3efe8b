taskset -c 0 node loadtest/peers/node-ws/server.js --listen 127.0.0.1:46583 --symbols 2000 --rate 100000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:46583/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe random:50 --rate 100000 --symbols 2000 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/watchlist-node-ws-c0-n1000-r100000-s2000-random50-fanout
