taskset -c 0 target/peers/release/peer-bare-fanout --listen 127.0.0.1:58141 --symbols 10000 --rate 200000
taskset -c 1 target/release/loadtest --url ws://127.0.0.1:58141/ws --clients 1000 --duration 10 --warmup 2 --scenario fanout --subscribe random:100 --rate 200000 --symbols 10000 --out loadtest/runs/2026-12-01-vm-2core-issue11/cells/large-bare-fanout-c0-n1000-r200000-s10000-random100-fanout
