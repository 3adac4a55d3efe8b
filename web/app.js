// tickcast board: the reference browser client of protocol v1
// (PROTOCOL.md). Plain JavaScript, no framework, no build step: tickcast
// serves this file as it is.
//
// What it shows a client author, in reading order:
//   1. the WebSocket URL comes from the page's own location (ws: or wss:,
//      same host) and carries the page's ?token= along;
//   2. requests carry an integer id and replies are matched by it;
//   3. every tick's seq is checked against the previous one of its symbol
//      (see checkSeq) - a gap is a bug, the server never skips silently;
//   4. the DOM is updated at most once per animation frame, with only the
//      newest quote of each symbol (see onQuote and render);
//   5. a dropped connection is retried with exponential backoff and the
//      subscription is sent again (see connect and onClose).
//
// The state the page shows is mirrored into data-* attributes of #health
// and of every table row, so tests and tools can read it without reaching
// into this script.
'use strict';

(function board() {
  // ---------------------------------------------------------------- settings

  const BACKOFF_MIN_MS = 500; // first retry after a drop
  const BACKOFF_MAX_MS = 10_000; // retries never wait longer than this
  const STABLE_MS = 5_000; // a connection up this long resets the backoff
  const PING_EVERY_MS = 3_000; // app-level {"op":"ping"} for the RTT display
  const FLASH_MS = 600; // how long a moved price stays highlighted
  const FLASH_UP = 'rgba(46, 204, 113, 0.5)';
  const FLASH_DOWN = 'rgba(231, 76, 60, 0.5)';
  const FLASHED = ['bid', 'ask', 'last']; // the columns that flash
  const DEFAULT_GROUP = 'fx-majors'; // used when the server has it
  const STORAGE_KEY = 'tickcast.board.selection';

  // The close codes the server sends (src/shard.rs), for when it sends no
  // reason; 1006 is the browser's own, for a connection lost without a
  // close frame. A refused upgrade (such as 503 at the connection limit)
  // is an HTTP status, never a close code: the browser reports it as 1006.
  const CLOSE_NAMES = {
    1000: 'normal close',
    1001: 'server shutting down',
    1002: 'protocol error',
    1006: 'connection lost (no close frame)',
    1007: 'invalid data (not UTF-8)',
    1008: 'token expired',
    1009: 'message too big',
    4001: 'slow consumer',
    4002: 'heartbeat timeout',
    4008: 'rate limited',
  };

  // -------------------------------------------------------------------- DOM

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'),
    server: $('server'),
    form: $('pick'),
    group: $('group'),
    symbols: $('symbols'),
    message: $('message'),
    health: $('health'),
    rate: $('rate'),
    latency: $('latency'),
    rtt: $('rtt'),
    gaps: $('gaps'),
    connects: $('connects'),
    close: $('close'),
    resume: $('resume'),
    notice: $('notice'),
    board: $('board'),
    rows: $('rows'),
    empty: $('empty'),
    wsurl: $('wsurl'),
  };
  const intFormat = new Intl.NumberFormat('en-US');

  // ------------------------------------------------------------------ state

  let ws = null; // the current WebSocket, or null between attempts
  let state = 'connecting'; // 'connecting' | 'open' | 'reconnecting'
  let nextId = 1; // request ids
  let connects = 0; // connections opened since the page loaded
  let attempts = 0; // failed attempts since the last open connection
  let openedAt = 0; // performance.now() when the current connection opened
  let backoff = BACKOFF_MIN_MS;
  let retryTimer = 0;
  let retryAt = 0;

  let selection = readSelection(); // {group: 'name'} | {symbols: [...]} | null
  let groupsId = 0; // id of our list_groups request
  let subscribeId = 0; // id of our latest subscribe request
  // While switching to another selection, quotes of the old one may still be
  // in flight. We send unsubscribe(all) first and drop quotes until its
  // reply: the server answers in order, so nothing of the old selection
  // comes after that reply.
  let switchingId = 0;

  const lastSeq = new Map(); // symbol -> seq of the last snapshot/tick seen
  // Resume (protocol 1.1): the epoch of the last welcome, and what the
  // resubscription after a reconnect asked for. `resuming` is null until a
  // reconnect resumes; then {gaps: gap count when it began, resets: symbols
  // the server sent a reset snapshot for}.
  let epoch = null;
  let resuming = null;
  let gaps = 0;
  let lastGap = '';

  let msgsThisSecond = 0;
  let msgsTotal = 0;
  let ticksTotal = 0;
  let latencies = []; // ms, ticks received this second
  const pings = new Map(); // ping id -> performance.now() when sent
  let rttMs = null;
  let lastClose = null; // {code, reason, at} of the last connection that ended

  // Rendering state (see render).
  const pending = new Map(); // symbol -> newest quote not yet drawn
  let frameRequested = false;
  const rows = new Map(); // symbol -> {tr, cells, prev, digits}
  const sorted = []; // the symbols of `rows`, sorted: the table's order

  // ------------------------------------------------------------ connection

  // ws: for http pages, wss: for https pages, always the page's own host.
  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({ client: 'board' });
    const token = new URLSearchParams(location.search).get('token');
    if (token) q.set('token', token);
    return `${scheme}//${location.host}/ws?${q}`;
  }

  function connect() {
    retryTimer = 0;
    setState(connects === 0 ? 'connecting' : 'reconnecting');
    const sock = new WebSocket(wsUrl());
    ws = sock;
    // Each handler checks that it belongs to the current socket, so a late
    // event of an old socket can never disturb a newer one.
    sock.onopen = () => sock === ws && onOpen();
    sock.onmessage = (ev) => sock === ws && onMessage(ev);
    sock.onclose = (ev) => sock === ws && onClose(ev);
    // onerror carries no detail (browsers hide it on purpose); onclose
    // always follows it, so everything is handled there.
  }

  function send(op, fields) {
    const id = nextId++;
    ws.send(JSON.stringify({ op, id, ...fields }));
    return id;
  }

  function onOpen() {
    connects += 1;
    attempts = 0;
    openedAt = performance.now();
    pings.clear();
    switchingId = 0;
    showMessage('');
    setState('open');
    groupsId = send('list_groups', {});
    // A reconnect resumes: the subscribe names the epoch and the last seq
    // held per symbol, and the server replays what was missed (seq checks
    // go on from the held seqs) or sends a reset snapshot, which sets a new
    // baseline. Without a previous epoch the snapshots set fresh baselines.
    const resume = epoch !== null && lastSeq.size ? Object.fromEntries(lastSeq) : null;
    if (!resume) lastSeq.clear();
    resuming = resume ? { gaps, resets: 0 } : null;
    if (selection) subscribe(resume);
    // A first RTT soon (once the subscription's snapshots are drawn), then
    // every PING_EVERY_MS. Any frame we send also counts as life for the
    // server; its own WebSocket pings are answered by the browser.
    setTimeout(ping, 1000);
  }

  function onClose(ev) {
    const wasOpen = openedAt > 0;
    const upFor = wasOpen ? performance.now() - openedAt : 0;
    ws = null;
    openedAt = 0;
    if (wasOpen) {
      // The server ended an established connection: show why.
      lastClose = { code: ev.code, reason: ev.reason, at: new Date() };
    } else {
      // The attempt failed before the handshake completed (server down,
      // or a refused token: browsers do not expose the HTTP status).
      attempts += 1;
      if (attempts >= 3) showMessage('cannot connect: is the server up, and is the ?token= right?');
    }
    // Backoff: 0.5 s, 1 s, 2 s, ... up to 10 s between attempts, with
    // +-20% jitter so a crowd of boards does not reconnect in lockstep. A
    // connection that was stable resets it; one that drops at once does not,
    // so a server that accepts and immediately closes is not hammered.
    if (upFor >= STABLE_MS) backoff = BACKOFF_MIN_MS;
    const delay = backoff * (0.8 + Math.random() * 0.4);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    retryAt = performance.now() + delay;
    retryTimer = setTimeout(connect, delay);
    setState('reconnecting');
  }

  function ping() {
    if (state !== 'open') return;
    pings.set(send('ping', {}), performance.now());
  }

  // ---------------------------------------------------------- subscriptions

  // `resume`: {symbol: last seq held} to resume from, or null.
  function subscribe(resume) {
    const what = selection.group ? { groups: [selection.group] } : { symbols: selection.symbols };
    subscribeId = send('subscribe', resume ? { ...what, epoch, resume } : what);
  }

  // Called when the user picks something else.
  function choose(next) {
    if (!next || sameSelection(next, selection)) return;
    selection = next;
    saveSelection();
    showSelection();
    clearBoard();
    if (state === 'open') {
      switchingId = send('unsubscribe', { all: true });
      lastSeq.clear();
      resuming = null;
      subscribe(null);
    } // otherwise the next connection subscribes to it
  }

  function sameSelection(a, b) {
    if (!a || !b) return false;
    if (a.group || b.group) return a.group === b.group;
    return a.symbols.join(',') === b.symbols.join(',');
  }

  // The selection lives in the URL hash (#group=fx-majors or
  // #symbols=AAPL,MSFT) so it can be bookmarked and shared, and in
  // localStorage so a plain http://host:port/ remembers the last choice.
  function parseSelection(text) {
    const p = new URLSearchParams(text.replace(/^#/, ''));
    if (p.get('group')) return { group: p.get('group') };
    const symbols = parseSymbols(p.get('symbols') || '');
    return symbols.length ? { symbols } : null;
  }

  function readSelection() {
    let stored = '';
    try {
      stored = localStorage.getItem(STORAGE_KEY) || '';
    } catch {
      // storage may be disabled: the hash still works
    }
    return parseSelection(location.hash) || parseSelection(stored);
  }

  function selectionText(s) {
    return s.group ? `group=${encodeURIComponent(s.group)}` : `symbols=${s.symbols.join(',')}`;
  }

  function saveSelection() {
    const text = selectionText(selection);
    history.replaceState(null, '', `#${text}`);
    try {
      localStorage.setItem(STORAGE_KEY, text);
    } catch {
      // ignore: see readSelection
    }
  }

  // Symbols typed by the user: split on commas and spaces, upper-cased (the
  // protocol's symbols are case-sensitive; the feeds this board is meant
  // for use upper case), duplicates dropped.
  function parseSymbols(text) {
    const out = [];
    for (const s of text.split(/[\s,]+/)) {
      const sym = s.trim().toUpperCase();
      if (sym && !out.includes(sym)) out.push(sym);
    }
    return out;
  }

  function showSelection() {
    if (!selection) return;
    ui.group.value = selection.group || '';
    ui.symbols.value = selection.symbols ? selection.symbols.join(', ') : '';
    ui.health.dataset.selection = selectionText(selection);
  }

  function fillGroups(list) {
    ui.group.replaceChildren();
    const add = (value, label) => ui.group.add(new Option(label, value));
    add('', '(typed symbols)');
    for (const g of list) add(g.name, `${g.name} (${g.symbols})`);
    add('*', '* (every symbol)');
    const names = list.map((g) => g.name);
    // The first visit (or a remembered group the server no longer has)
    // gets the default group.
    if (!selection || (selection.group && selection.group !== '*' && !names.includes(selection.group))) {
      const group = names.includes(DEFAULT_GROUP) ? DEFAULT_GROUP : names[0] || '*';
      const hadSelection = selection !== null;
      if (hadSelection) {
        choose({ group });
      } else {
        selection = { group };
        saveSelection();
        subscribe(null);
      }
    }
    showSelection();
  }

  // --------------------------------------------------------------- messages

  function onMessage(ev) {
    msgsThisSecond += 1;
    msgsTotal += 1;
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      showMessage('the server sent something that is not JSON');
      return;
    }
    switch (m.type) {
      case 'tick':
      case 'snapshot':
        onQuote(m);
        break;
      case 'welcome':
        ui.server.textContent = `${m.server} · ${m.conn_id} · heartbeat ${m.heartbeat_ms} ms`;
        epoch = typeof m.epoch === 'string' ? m.epoch : null;
        break;
      case 'groups':
        if (m.id === groupsId) fillGroups(m.groups);
        break;
      case 'subscribed':
        if (m.id === subscribeId) {
          showMessage('');
          // Typed symbols get a row at once, even before their first quote.
          for (const sym of m.symbols) ensureRow(sym);
          updateEmpty();
        }
        break;
      case 'unsubscribed':
        if (m.id === switchingId) switchingId = 0;
        else if (m.id === undefined && m.groups.length) {
          showMessage(`the server removed group ${m.groups.join(', ')}`);
        }
        break;
      case 'pong': {
        const sent = pings.get(m.id);
        if (sent !== undefined) {
          rttMs = performance.now() - sent;
          pings.delete(m.id);
          updateHealth();
        }
        break;
      }
      case 'notice':
        ui.notice.hidden = false;
        ui.notice.textContent = `${new Date(m.ts / 1e6).toLocaleTimeString()} · ${m.text}`;
        break;
      case 'error':
        if (m.id === switchingId) switchingId = 0;
        showMessage(`${m.code}: ${m.message}`);
        break;
      default:
        // Newer servers may add message types: ignore what we do not know.
        break;
    }
  }

  // A tick or snapshot. Called for every message, so it does little: check
  // the sequence, note the latency, and keep the quote for the next frame.
  function onQuote(m) {
    if (switchingId) return; // still the old selection's quotes
    if (m.reset && resuming) {
      resuming.resets += 1;
      updateHealth();
    }
    checkSeq(m);
    if (m.type === 'tick') {
      ticksTotal += 1;
      // ts is nanoseconds since the epoch at which the broadcaster accepted
      // the tick. (A double holds it to ~0.25 us, plenty for milliseconds.)
      // Both clocks are involved, see the tooltip in index.html.
      latencies.push(performance.timeOrigin + performance.now() - m.ts / 1e6);
    }
    // Only the newest quote per symbol is kept until the next frame: a
    // symbol that ticks 50 times between two frames is drawn once.
    pending.set(m.symbol, m);
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(render);
    }
  }

  // Sequence gaps (PROTOCOL.md, "Ordering and loss guarantees"), per symbol:
  //  - a snapshot carries the seq of the symbol's last tick: it sets the
  //    baseline (a repeated snapshot repeats the seq already seen);
  //  - every tick must then carry exactly baseline + 1, + 2, ...;
  //  - a tick of a symbol without a baseline (it had no value yet when we
  //    subscribed, so it got no snapshot) starts the baseline;
  //  - baselines belong to one connection: onOpen clears them, and the
  //    snapshots after the new subscribe set them again.
  // The server never skips a tick: a client too slow to keep up is closed
  // with 4001 instead. So a gap on an open connection is a bug, and this
  // counter should stay at 0.
  function checkSeq(m) {
    const prev = lastSeq.get(m.symbol);
    if (m.type === 'tick' && prev !== undefined && m.seq !== prev + 1) {
      gaps += 1;
      lastGap = `${m.symbol}: expected seq ${prev + 1}, got ${m.seq}`;
      console.warn(`tickcast board: seq gap on ${lastGap}`);
      updateHealth();
    }
    lastSeq.set(m.symbol, m.seq);
  }

  // -------------------------------------------------------------- rendering

  // Runs at most once per animation frame (requestAnimationFrame, ~60 Hz;
  // browsers pause it in hidden tabs, and `pending` then holds one quote
  // per symbol at most). It writes each pending quote into its row.
  function render() {
    frameRequested = false;
    for (const q of pending.values()) drawQuote(q);
    pending.clear();
    updateEmpty();
  }

  function drawQuote(q) {
    const row = ensureRow(q.symbol);
    // Prices print with as many decimals as this symbol has shown so far
    // (at least 2), so a column never jumps between 1.1 and 1.10012.
    row.digits = Math.max(row.digits, decimals(q.bid), decimals(q.ask), decimals(q.last));
    const d = row.digits;
    const spread = q.bid !== undefined && q.ask !== undefined ? q.ask - q.bid : undefined;
    const values = { bid: q.bid, ask: q.ask, last: q.last };
    const noSize = q.bid_size === undefined && q.ask_size === undefined;
    const text = {
      bid: fmtPrice(q.bid, d),
      ask: fmtPrice(q.ask, d),
      spread: fmtPrice(spread, d),
      last: fmtPrice(q.last, d),
      size: noSize ? '—' : `${fmtInt(q.bid_size)} × ${fmtInt(q.ask_size)}`,
      volume: fmtInt(q.volume),
    };
    for (const key of Object.keys(text)) {
      const cell = row.cells[key];
      if (cell.textContent === text[key]) continue;
      cell.textContent = text[key];
      // Prices flash when they move; spread, sizes and volume change on
      // almost every tick, so they just update (a board where every cell
      // blinks all the time tells the eye nothing).
      const now = values[key];
      const before = row.prev[key];
      if (FLASHED.includes(key) && before !== undefined && now !== undefined && now !== before) {
        flash(cell, now > before);
        // The last price also keeps the colour of its latest move.
        if (key === 'last') cell.className = now > before ? 'up' : 'down';
      }
    }
    row.prev = values;
    const ds = row.tr.dataset;
    ds.seq = q.seq;
    ds.bid = q.bid ?? '';
    ds.ask = q.ask ?? '';
    ds.last = q.last ?? '';
  }

  // A short background highlight, green when the value rose, red when it
  // fell. The Web Animations API restarts it cleanly on every change
  // without touching classes or forcing a layout.
  function flash(cell, up) {
    if (cell.flashing) cell.flashing.cancel();
    cell.flashing = cell.animate(
      [{ backgroundColor: up ? FLASH_UP : FLASH_DOWN }, { backgroundColor: 'transparent' }],
      { duration: FLASH_MS, easing: 'ease-out' },
    );
  }

  // The row of a symbol, created at its sorted place: rows never move once
  // they exist, so the board does not jump around as prices change.
  function ensureRow(symbol) {
    let row = rows.get(symbol);
    if (row) return row;
    const tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    const cells = {};
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = symbol;
    tr.append(th);
    for (const key of ['bid', 'ask', 'spread', 'last', 'size', 'volume']) {
      const td = document.createElement('td');
      td.textContent = '—';
      td.dataset.col = key;
      cells[key] = td;
      tr.append(td);
    }
    row = { tr, cells, prev: {}, digits: 2 };
    rows.set(symbol, row);
    // Binary search for the insertion point (plain code-point order, the
    // same in every locale).
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < symbol) lo = mid + 1;
      else hi = mid;
    }
    ui.rows.insertBefore(tr, lo < sorted.length ? rows.get(sorted[lo]).tr : null);
    sorted.splice(lo, 0, symbol);
    return row;
  }

  function clearBoard() {
    pending.clear();
    rows.clear();
    sorted.length = 0;
    ui.rows.replaceChildren();
    updateEmpty();
  }

  function updateEmpty() {
    ui.empty.hidden = rows.size > 0;
    ui.health.dataset.rows = rows.size;
  }

  function decimals(x) {
    if (x === undefined) return 0;
    const s = String(x);
    const dot = s.indexOf('.');
    return dot < 0 || s.includes('e') ? 0 : Math.min(s.length - dot - 1, 8);
  }

  function fmtPrice(x, digits) {
    return x === undefined ? '—' : x.toFixed(digits);
  }

  function fmtInt(x) {
    return x === undefined ? '—' : intFormat.format(x);
  }

  // ----------------------------------------------------------------- health

  function setState(s) {
    state = s;
    ui.board.classList.toggle('stale', s !== 'open');
    updateHealth();
  }

  // Once a second: messages per second and the latency of that second's
  // ticks, then the whole health panel.
  function everySecond() {
    const h = ui.health.dataset;
    h.rate = msgsThisSecond;
    ui.rate.textContent = state === 'open' ? intFormat.format(msgsThisSecond) : '–';
    msgsThisSecond = 0;
    if (latencies.length) {
      latencies.sort((a, b) => a - b);
      const p50 = latencies[Math.floor(latencies.length / 2)];
      const max = latencies[latencies.length - 1];
      ui.latency.textContent = `${fmtMs(p50)} / ${fmtMs(max)}`;
      h.latency = p50.toFixed(3);
      latencies = [];
    } else if (state !== 'open') {
      ui.latency.textContent = '–';
    }
    updateHealth();
  }

  function updateHealth() {
    const h = ui.health.dataset;
    h.conn = state;
    h.connects = connects;
    h.msgs = msgsTotal;
    h.ticks = ticksTotal;
    h.gaps = gaps;
    h.rtt = rttMs === null ? '' : rttMs.toFixed(3);
    h.closeCode = lastClose ? lastClose.code : '';
    h.closeReason = lastClose ? lastClose.reason : '';
    h.resume = resumeText();
    ui.resume.textContent = h.resume || '–';
    ui.resume.classList.toggle('bad', !!resuming && gaps > resuming.gaps);

    ui.conn.dataset.state = state;
    if (state === 'open') {
      ui.conn.textContent = 'connected';
    } else if (state === 'connecting') {
      ui.conn.textContent = 'connecting…';
    } else if (retryTimer) {
      const secs = Math.max(0, (retryAt - performance.now()) / 1000);
      const why = attempts ? ` (attempt ${attempts + 1})` : '';
      ui.conn.textContent = `reconnecting in ${secs.toFixed(1)} s${why}`;
    } else {
      ui.conn.textContent = 'reconnecting…';
    }
    ui.rtt.textContent = rttMs === null || state !== 'open' ? '–' : fmtMs(rttMs);
    ui.gaps.textContent = gaps;
    ui.gaps.classList.toggle('bad', gaps > 0);
    ui.gaps.title = lastGap ? `last gap: ${lastGap}` : '';
    ui.connects.textContent = connects;
    if (lastClose) {
      const { code, reason, at } = lastClose;
      ui.close.textContent = `${code} ${reason || CLOSE_NAMES[code] || ''} · ${at.toLocaleTimeString()}`;
    }
  }

  // 'resumed, 0 missed' (seq gaps since the resume), or the resets.
  function resumeText() {
    if (!resuming) return '';
    const missed = gaps - resuming.gaps;
    if (resuming.resets) return `reset: ${resuming.resets} symbol${resuming.resets > 1 ? 's' : ''}`;
    return `resumed, ${missed} missed`;
  }

  function fmtMs(ms) {
    return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
  }

  function showMessage(text) {
    ui.message.textContent = text;
  }

  // ------------------------------------------------------------------ start

  ui.group.addEventListener('change', () => {
    if (ui.group.value) choose({ group: ui.group.value });
    else ui.symbols.focus();
  });
  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const symbols = parseSymbols(ui.symbols.value);
    if (symbols.length) choose({ symbols });
    else if (ui.group.value) choose({ group: ui.group.value });
  });
  // Editing the hash by hand (or going back) switches too.
  window.addEventListener('hashchange', () => choose(parseSelection(location.hash)));

  ui.wsurl.textContent = wsUrl().replace(/token=[^&]*/, 'token=…');
  showSelection();
  setInterval(everySecond, 1000);
  setInterval(ping, PING_EVERY_MS);
  // The reconnect countdown also ticks between the one-second updates.
  setInterval(() => state === 'reconnecting' && updateHealth(), 200);
  connect();
})();
