// mcl spy: the page. Plain JavaScript, no library, no build step.
//
// Everything that comes from the network (topics, sender addresses,
// payload keys and strings) is put into the page as text: textContent,
// createTextNode, setAttribute of plain attributes, canvas fillText.
// Nothing here assigns innerHTML, outerHTML, insertAdjacentHTML,
// document.write, eval or a javascript: URL.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const state = {
    sort: 'name', dir: 'asc', filter: '', paused: false,
    selected: 0, lastSeq: 0, keep: 20, msgs: [],
    field: null, fieldSeries: [], rateSeries: [],
    open: new Map(), // path -> expanded, for the message trees
    frames: 0,
  };
  let es = null;

  // --- formatting ---
  function fmtRate(hz) {
    if (!hz) return '0';
    return hz < 10 ? hz.toFixed(2) + ' Hz' : hz.toFixed(1) + ' Hz';
  }
  function fmtBytes(b) {
    if (b >= 1e9) return (b / 1e9).toFixed(1) + ' GB/s';
    if (b >= 1e6) return (b / 1e6).toFixed(1) + ' MB/s';
    if (b >= 1e3) return (b / 1e3).toFixed(1) + ' kB/s';
    return b.toFixed(0) + ' B/s';
  }
  function fmtPeriod(s) {
    if (!s) return '0';
    if (s < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1e3).toFixed(1) + ' ms';
    return s.toFixed(2) + ' s';
  }
  function fmtAge(s) {
    if (s < 1) return 'now';
    if (s < 120) return s.toFixed(0) + ' s ago';
    return (s / 60).toFixed(0) + ' min ago';
  }

  // --- the stream ---
  function connect() {
    if (es) { es.close(); es = null; }
    if (state.paused) return;
    const p = new URLSearchParams({ sort: state.sort, dir: state.dir, filter: state.filter });
    if (state.selected) {
      p.set('topic', String(state.selected));
      p.set('since', String(state.lastSeq));
    }
    es = new EventSource('events?' + p.toString());
    es.addEventListener('frame', (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    });
    es.onerror = () => { $('status').textContent = 'disconnected, retrying…'; };
  }

  function onFrame(f) {
    state.frames++;
    state.keep = f.keep || state.keep;
    const st = $('status');
    st.dataset.frames = String(state.frames);
    st.textContent = 'live · ' + new Date(f.time).toLocaleTimeString();
    $('where').textContent = f.where || '';
    renderSummary(f);
    const err = $('error');
    err.hidden = !f.error;
    err.textContent = f.error ? 'filter: ' + f.error : '';
    renderRows(f.rows || []);
    const more = $('more');
    more.textContent = f.matched > f.rows.length
      ? 'showing the first ' + f.rows.length + ' of ' + f.matched + ' topics by the current sort' : '';
    if (f.detail) renderDetail(f.detail, f.time);
  }

  function renderSummary(f) {
    const s = $('summary');
    const parts = [
      ['topics', f.topics + ' topics (limit ' + f.limit + ')'],
      ['matched', f.matched + ' match the filter'],
      ['refused', 'refused ' + f.refused + ' messages of new topics past the limit'],
      ['undecodable', 'undecodable ' + f.undecodable],
      ['lost', 'mcl/2 lost ' + f.lost + ' reordered ' + f.reordered + ' repeated ' + f.repeated],
      ['dropped', 'dropped ' + f.dropped],
    ];
    if (f.not_kept) parts.push(['not-kept', f.not_kept + ' payloads not kept (bounds)']);
    const nodes = [];
    for (const [id, text] of parts) {
      if (nodes.length) nodes.push(document.createTextNode(' · '));
      const sp = el('span', null, text);
      sp.id = 'sum-' + id;
      nodes.push(sp);
    }
    s.replaceChildren(...nodes);
    s.dataset.refused = String(f.refused);
    s.dataset.topics = String(f.topics);
  }

  // --- the table ---
  const COLS = 9;
  function renderRows(rows) {
    const tb = $('rows');
    while (tb.rows.length > rows.length) tb.deleteRow(-1);
    while (tb.rows.length < rows.length) {
      const tr = tb.insertRow(-1);
      for (let i = 0; i < COLS; i++) {
        const td = tr.insertCell(-1);
        td.className = ['topic', 'msgs n', 'rate n', 'jitter n', 'bw n', 'size n', 'senders n', 'mcl2 n', 'last n'][i];
      }
    }
    rows.forEach((r, i) => {
      const tr = tb.rows[i];
      tr.dataset.id = String(r.id);
      tr.classList.toggle('selected', r.id !== 0 && r.id === state.selected);
      tr.classList.toggle('quiet', r.age_s > 5);
      const c = tr.cells;
      const name = r.topic + (r.cut ? '…' : '');
      if (c[0].textContent !== name) { c[0].textContent = name; c[0].title = name; }
      c[1].textContent = String(r.messages);
      c[2].textContent = fmtRate(r.rate_hz);
      c[3].textContent = fmtPeriod(r.jitter_s);
      c[4].textContent = fmtBytes(r.bytes_per_s);
      c[5].textContent = r.size_min + ' / ' + r.size_mean.toFixed(0) + ' / ' + r.size_max;
      c[6].textContent = r.senders + (r.senders_more ? '+' : '');
      c[7].textContent = r.mcl2 ? r.mcl2.lost + '/' + r.mcl2.reordered + '/' + r.mcl2.repeated : '-';
      c[8].textContent = fmtAge(r.age_s);
    });
  }

  $('rows').addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr');
    if (!tr) return;
    const id = Number(tr.dataset.id);
    if (id) select(id);
  });

  document.querySelectorAll('th[data-sort]').forEach((th) => {
    th.addEventListener('click', () => {
      const col = th.dataset.sort;
      if (state.sort === col) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
      else { state.sort = col; state.dir = col === 'name' ? 'asc' : 'desc'; }
      markSort();
      connect();
    });
  });
  function markSort() {
    document.querySelectorAll('th[data-sort]').forEach((th) => {
      const on = th.dataset.sort === state.sort;
      th.classList.toggle('sorted', on);
      th.classList.toggle('asc', on && state.dir === 'asc');
      th.classList.toggle('desc', on && state.dir === 'desc');
    });
  }

  let filterTimer = 0;
  $('filter').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.filter = $('filter').value.trim(); connect(); }, 250);
  });

  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (state.paused) $('status').textContent = 'paused';
    connect();
  });

  $('clear').addEventListener('click', () => {
    fetch('api/clear', { method: 'POST', headers: { 'X-Mcl-Spy': '1' } }).finally(() => {
      state.selected = 0;
      resetTopic();
      $('detail').hidden = true;
      $('rows').replaceChildren();
      connect();
    });
  });

  // --- the selected topic ---
  function resetTopic() {
    state.lastSeq = 0;
    state.msgs = [];
    state.field = null;
    state.fieldSeries = [];
    state.rateSeries = [];
    state.open = new Map();
    $('messages').replaceChildren();
    $('senders').replaceChildren();
    $('field-path').textContent = '(click a number in a message)';
    const fv = $('field-value');
    fv.textContent = '';
    delete fv.dataset.lastValue;
    $('rate-value').textContent = '';
    draw($('rate-plot'), [], '#2e7d32');
    draw($('field-plot'), [], '#1565c0');
  }

  function select(id) {
    if (id === state.selected) return;
    state.selected = id;
    resetTopic();
    $('detail').hidden = false;
    $('d-topic').textContent = '';
    for (const tr of $('rows').rows) tr.classList.toggle('selected', Number(tr.dataset.id) === id);
    connect();
  }

  function renderDetail(d, time) {
    if (d.id !== state.selected) return;
    if (d.gone) {
      $('d-topic').textContent = '(this topic was cleared)';
      return;
    }
    const h = $('d-topic');
    if (h.textContent !== d.topic) h.textContent = d.topic;
    const a = $('download');
    a.setAttribute('href', 'api/messages?topic=' + encodeURIComponent(String(d.id)));
    a.setAttribute('download', (d.topic.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'topic') + '.jsonl');
    const s = d.stats;
    if (s) {
      $('d-stats').textContent = s.messages + ' messages · ' + fmtRate(s.rate_hz) + ' · period ' +
        fmtPeriod(s.min_period_s) + '…' + fmtPeriod(s.max_period_s) + ' · jitter ' + fmtPeriod(s.jitter_s) +
        ' · ' + fmtBytes(s.bytes_per_s) + ' · size ' + s.size_min + '/' + s.size_mean.toFixed(0) + '/' + s.size_max + ' B';
      state.rateSeries.push({ t: Date.parse(time), v: s.rate_hz });
      if (state.rateSeries.length > 600) state.rateSeries.shift();
      $('rate-value').textContent = fmtRate(s.rate_hz);
      draw($('rate-plot'), state.rateSeries, '#2e7d32');
    }
    const ul = $('senders');
    const lis = d.senders.map((x) => el('li', null, x.addr + ' · ' + x.messages + ' messages'));
    if (d.senders_more) lis.push(el('li', null, 'and more (only the first 64 are listed)'));
    ul.replaceChildren(...lis);

    let fresh = false;
    for (const m of d.messages) {
      if (m.seq <= state.lastSeq) continue;
      state.lastSeq = m.seq;
      state.msgs.push(m);
      fresh = true;
      if (state.field) addPoint(m);
    }
    if (!fresh) return;
    if (state.msgs.length > state.keep) state.msgs.splice(0, state.msgs.length - state.keep);
    if (state.field) drawField();
    renderMessages();
  }

  // --- JSON trees ---
  const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  function pathString(path) {
    let s = '';
    for (const k of path) {
      if (typeof k === 'number') s += '[' + k + ']';
      else if (IDENT.test(k)) s += (s ? '.' : '') + k;
      else s += '[' + JSON.stringify(k) + ']';
    }
    return s;
  }
  function lookup(v, path) {
    for (const k of path) {
      if (v === null || typeof v !== 'object') return undefined;
      if (Array.isArray(v) !== (typeof k === 'number')) return undefined;
      if (!Object.prototype.hasOwnProperty.call(v, k)) return undefined;
      v = v[k];
    }
    return v;
  }

  const MAX_KIDS = 2000;
  function renderMessages() {
    const box = $('messages');
    const nodes = [];
    for (let i = state.msgs.length - 1; i >= 0; i--) {
      const m = state.msgs[i];
      const det = el('details', 'msg');
      det.dataset.seq = String(m.seq);
      const sum = el('summary', null, '#' + m.seq + ' · ' + new Date(m.time).toLocaleTimeString() +
        ' · ' + m.sender + ' · ' + m.size + ' B');
      det.appendChild(sum);
      if (m.note) det.appendChild(el('div', 'note', m.note));
      const fill = () => {
        if (det.dataset.filled || !('payload' in m)) return;
        det.dataset.filled = '1';
        const tree = el('div', 'tree');
        tree.appendChild(renderNode(null, m.payload, [], 0));
        det.appendChild(tree);
      };
      det.addEventListener('toggle', () => { if (det.open) fill(); });
      if (i === state.msgs.length - 1) { det.open = true; fill(); }
      nodes.push(det);
    }
    box.replaceChildren(...nodes);
  }

  // renderNode renders one value under its key (null for the root).
  function renderNode(key, v, path, depth) {
    const label = () => {
      if (key === null) return null;
      return el('span', 'key', (typeof key === 'number' ? '[' + key + ']' : key) + ': ');
    };
    if (v !== null && typeof v === 'object') {
      const isArr = Array.isArray(v);
      const keys = isArr ? null : Object.keys(v);
      const n = isArr ? v.length : keys.length;
      const det = el('details');
      const ps = pathString(path);
      const remembered = state.open.get(ps);
      det.open = remembered === undefined ? depth < 3 : remembered;
      const sum = el('summary');
      const l = label();
      if (l) sum.appendChild(l);
      sum.appendChild(el('span', 'lit', isArr ? '[' + n + ']' : '{' + n + '}'));
      det.appendChild(sum);
      const fill = () => {
        if (det.dataset.filled) return;
        det.dataset.filled = '1';
        const kids = el('div', 'kids');
        const shown = Math.min(n, MAX_KIDS);
        for (let i = 0; i < shown; i++) {
          const k = isArr ? i : keys[i];
          kids.appendChild(renderNode(k, v[k], path.concat([k]), depth + 1));
        }
        if (n > shown) kids.appendChild(el('div', 'note', '… ' + (n - shown) + ' more (download to see all)'));
        det.appendChild(kids);
      };
      det.addEventListener('toggle', (ev) => {
        ev.stopPropagation();
        state.open.set(ps, det.open);
        if (det.open) fill();
      });
      if (det.open) fill();
      return det;
    }
    const line = el('div');
    const l = label();
    if (l) line.appendChild(l);
    let leaf;
    if (typeof v === 'number') {
      leaf = el('span', 'num', String(v));
      const ps = pathString(path);
      leaf.dataset.path = ps;
      leaf.title = 'plot ' + (ps || 'the value');
      if (state.field && pathString(state.field) === ps) leaf.classList.add('plotted');
      leaf.addEventListener('click', () => plotField(path));
    } else if (typeof v === 'string') {
      leaf = el('span', 'str', JSON.stringify(v));
    } else {
      leaf = el('span', 'lit', String(v));
    }
    line.appendChild(leaf);
    return line;
  }

  // --- plots ---
  function plotField(path) {
    state.field = path;
    state.fieldSeries = [];
    $('field-path').textContent = pathString(path) || '(the value)';
    for (const m of state.msgs) addPoint(m);
    drawField();
    document.querySelectorAll('.num.plotted').forEach((n) => n.classList.remove('plotted'));
    const ps = pathString(path);
    document.querySelectorAll('.num').forEach((n) => { if (n.dataset.path === ps) n.classList.add('plotted'); });
  }
  function addPoint(m) {
    if (!('payload' in m)) return;
    const v = lookup(m.payload, state.field);
    if (typeof v !== 'number') return;
    state.fieldSeries.push({ t: Date.parse(m.time), v: v, seq: m.seq });
    if (state.fieldSeries.length > 2000) state.fieldSeries.shift();
  }
  function drawField() {
    const s = state.fieldSeries;
    const fv = $('field-value');
    if (s.length) {
      const last = s[s.length - 1];
      fv.textContent = '= ' + String(last.v);
      fv.dataset.lastValue = String(last.v);
      fv.dataset.points = String(s.length);
    }
    draw($('field-plot'), s, '#1565c0');
  }

  function draw(cv, pts, color) {
    const ctx = cv.getContext('2d');
    const w = cv.width, h = cv.height, pad = 4, left = 56;
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px sans-serif';
    ctx.fillStyle = '#777';
    if (!pts.length) { ctx.fillText('no data yet', left, h / 2); return; }
    let t0 = pts[0].t, t1 = pts[pts.length - 1].t, lo = Infinity, hi = -Infinity;
    for (const p of pts) { if (p.v < lo) lo = p.v; if (p.v > hi) hi = p.v; }
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 1; hi += 1; }
    if (t1 <= t0) t1 = t0 + 1;
    const x = (t) => left + (w - left - pad) * (t - t0) / (t1 - t0);
    const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
    ctx.strokeStyle = '#ddd';
    ctx.beginPath(); ctx.moveTo(left, pad); ctx.lineTo(left, h - pad); ctx.lineTo(w - pad, h - pad); ctx.stroke();
    ctx.fillText(String(+hi.toPrecision(6)), 2, pad + 10);
    ctx.fillText(String(+lo.toPrecision(6)), 2, h - pad);
    ctx.fillText(((t1 - t0) / 1000).toFixed(1) + ' s', w - 50, h - pad - 4);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach((p, i) => {
      const X = x(p.t), Y = y(isFinite(p.v) ? p.v : lo);
      if (i === 0) ctx.moveTo(X, Y); else ctx.lineTo(X, Y);
    });
    ctx.stroke();
    if (pts.length === 1) { ctx.fillStyle = color; ctx.fillRect(x(pts[0].t) - 2, y(pts[0].v) - 2, 4, 4); }
  }

  markSort();
  resetTopic();
  connect();
})();
