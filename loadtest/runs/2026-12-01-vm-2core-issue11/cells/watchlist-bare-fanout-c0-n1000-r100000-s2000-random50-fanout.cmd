taskset -c 0 target/peers/release/peer-bare-fanout --listen 127.0.0.1:54927 --symbols 2000 --rate 100000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:54927/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe random:50 --rate 100000 --symbols 2000 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/watchlist-bare-fanout-c0-n1000-r100000-s2000-random50-fanout
