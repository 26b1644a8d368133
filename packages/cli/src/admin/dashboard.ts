/**
 * The admin dashboard: one static page, inline style and script, no build step. It polls
 * `/status` every second (polling, not SSE, so that a bearer token can go in a header) and posts
 * drain/enable as JSON. Data goes into the page through textContent only.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wslb admin</title>
<style>
  :root { color-scheme: light dark; font: 14px/1.4 system-ui, sans-serif; }
  body { margin: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
  .summary { color: GrayText; margin-bottom: 1rem; }
  .summary span { margin-right: 1.2rem; }
  table { border-collapse: collapse; min-width: 60rem; }
  th, td { text-align: left; padding: .35rem .7rem; border-bottom: 1px solid color-mix(in srgb, currentColor 20%, transparent); }
  th { font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state { display: inline-block; min-width: 5.5rem; text-align: center; border-radius: 1rem; padding: 0 .6rem; font-weight: 600; color: #fff; }
  .state.up { background: #1a7f37; }
  .state.down { background: #cf222e; }
  .state.draining { background: #9a6700; }
  .check.bad { color: #cf222e; }
  button { margin-right: .3rem; }
  #error { color: #cf222e; min-height: 1.4rem; }
  #login[hidden], #board[hidden] { display: none; }
</style>
</head>
<body>
<h1>wslb</h1>
<form id="login" hidden>
  <p>This admin listener needs its bearer token.</p>
  <input id="token" type="password" autocomplete="off" placeholder="token" required>
  <button type="submit">Open</button>
</form>
<main id="board" hidden>
  <div class="summary">
    <span>live connections: <b id="active">-</b></span>
    <span>total: <b id="total">-</b></span>
    <span>uptime: <b id="uptime">-</b></span>
    <span>updated: <b id="updated">-</b></span>
  </div>
  <table>
    <thead>
      <tr><th>backend</th><th>url</th><th>state</th><th>weight</th><th>live</th><th>total</th><th>failures</th><th>last check</th><th></th></tr>
    </thead>
    <tbody id="backends"></tbody>
  </table>
</main>
<p id="error" role="alert"></p>
<script>
(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem('wslb-admin-token') || '';

  function headers(json) {
    const h = {};
    if (token) h.authorization = 'Bearer ' + token;
    if (json) h['content-type'] = 'application/json';
    return h;
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function ago(iso) {
    if (!iso) return 'never';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 1 ? 'just now' : s < 120 ? Math.round(s) + ' s ago' : Math.round(s / 60) + ' min ago';
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
  }

  function render(status) {
    $('active').textContent = String(status.connections.active);
    $('total').textContent = String(status.connections.total);
    $('uptime').textContent = duration(status.uptime);
    $('updated').textContent = new Date().toLocaleTimeString();
    const body = $('backends');
    const rows = [];
    for (const b of status.backends) {
      const row = document.createElement('tr');
      row.dataset.backend = b.id;
      row.dataset.state = b.state;
      cell(row, b.id, 'id');
      cell(row, b.url, 'url');
      const state = cell(row, '', 'state-cell');
      const badge = document.createElement('span');
      badge.className = 'state ' + b.state;
      badge.textContent = b.state;
      state.appendChild(badge);
      cell(row, String(b.weight), 'num weight');
      cell(row, String(b.active), 'num active');
      cell(row, String(b.total), 'num total');
      cell(row, String(b.failures), 'num failures');
      const check = cell(row, b.lastCheck ? ago(b.lastCheck) + (b.lastCheckOk === false ? ' (failed)' : ' (ok)') : 'never', 'check');
      if (b.lastCheckOk === false) check.classList.add('bad');
      const actions = cell(row, '', 'actions');
      const drain = document.createElement('button');
      drain.type = 'button';
      drain.className = 'drain';
      drain.textContent = 'Drain';
      drain.disabled = b.drained;
      drain.addEventListener('click', () => act(b.id, 'drain'));
      const enable = document.createElement('button');
      enable.type = 'button';
      enable.className = 'enable';
      enable.textContent = 'Enable';
      enable.disabled = !b.drained;
      enable.addEventListener('click', () => act(b.id, 'enable'));
      actions.append(drain, enable);
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  function needToken() {
    $('board').hidden = true;
    $('login').hidden = false;
  }

  async function refresh() {
    try {
      const res = await fetch('status', { headers: headers(false), cache: 'no-store' });
      if (res.status === 401) return needToken();
      if (!res.ok) throw new Error('status ' + res.status);
      render(await res.json());
      $('login').hidden = true;
      $('board').hidden = false;
      $('error').textContent = '';
    } catch (err) {
      $('error').textContent = 'cannot reach the proxy: ' + err.message;
    }
  }

  async function act(id, action) {
    try {
      const res = await fetch('backends/' + encodeURIComponent(id) + '/' + action, {
        method: 'POST',
        headers: headers(true),
        body: '{}',
      });
      if (res.status === 401) return needToken();
      if (!res.ok) throw new Error((await res.json()).error || 'status ' + res.status);
    } catch (err) {
      $('error').textContent = action + ' ' + id + ' failed: ' + err.message;
    }
    refresh();
  }

  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('token').value;
    sessionStorage.setItem('wslb-admin-token', token);
    refresh();
  });

  let timer;
  function loop() {
    refresh().finally(() => { timer = setTimeout(loop, POLL_MS); });
  }
  document.addEventListener('visibilitychange', () => {
    clearTimeout(timer);
    if (!document.hidden) loop();
  });
  loop();
})();
</script>
</body>
</html>
`;
