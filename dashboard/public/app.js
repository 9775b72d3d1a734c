// The dashboard page: everything arrives over one EventSource (/api/events) and is
// drawn with plain DOM and SVG. No framework, no build step.
const PALETTE = ['#58a6ff', '#3fb950', '#d29922', '#bc8cff', '#39c5cf', '#ff7b72', '#e3b341', '#7ee787', '#a5d6ff', '#ffa657'];
const state = { status: null, deployments: [], events: [], losses: {} };
const colorOf = new Map();
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'style') n.style.cssText = v;
    else if (k === 'class') n.className = v;
    else n.setAttribute(k, v);
  }
  for (const k of kids) n.append(k);
  return n;
};
const color = (pnode) => {
  if (!colorOf.has(pnode)) colorOf.set(pnode, PALETTE[colorOf.size % PALETTE.length]);
  return colorOf.get(pnode);
};

function renderStatus() {
  const s = state.status;
  if (!s) return;
  const alive = s.pnodes.filter((p) => p.alive).length;
  $('supervisor').textContent = `${s.supervisor ? `supervisor pid ${s.supervisor.pid}` : 'no supervisor seen'} · ${alive}/${s.pnodes.length} PNodes alive · ${s.vnodes.length} VNodes`;
  const box = $('pnodes');
  box.replaceChildren(
    ...s.pnodes.map((p) =>
      el(
        'div',
        { class: `pnode ${p.alive ? 'alive' : 'dead'}`, style: `--c:${color(p.id)}`, 'data-testid': `pnode-${p.id}`, 'data-alive': String(p.alive), 'data-vnodes': p.vnodes.join(' ') },
        el('div', {}, el('span', { class: 'name' }, p.id), el('span', { class: `badge ${p.alive ? 'alive' : 'dead'}`, 'data-testid': `pnode-state-${p.id}` }, p.alive ? 'alive' : 'dead'), ...(p.quarantined ? [el('span', { class: 'badge dead', 'data-testid': `pnode-quarantined-${p.id}` }, 'quarantined')] : p.draining ? [el('span', { class: 'badge draining' }, 'draining')] : [])),
        el('div', { class: 'meta' }, `pid ${p.pid} · ${p.kernelMode} · ${p.gflops} GFLOP/s`),
        ...(p.risk !== undefined ? [el('div', { class: `meta risk${p.risk >= 0.3 ? ' high' : ''}`, 'data-testid': `pnode-risk-${p.id}`, title: riskTitle(p) }, `risk ${p.risk.toFixed(2)}${topSignal(p)}`)] : []),
        ...(p.reputation ? [el('div', { class: `meta${p.reputation.failed ? ' risk high' : ''}`, 'data-testid': `pnode-reputation-${p.id}`, title: 'segments of its work re-executed by other PNodes (docs/ledger.md)' }, `audited ${p.reputation.verified} ok${p.reputation.failed ? ` · ${p.reputation.failed} failed` : ''}`)] : []),
        el('div', { class: 'meta' }, `${p.alive ? p.vnodes.length : `had ${p.vnodes.length}`} VNodes · load ${(p.vnodes.length / Math.max(1, p.gflops)).toFixed(2)} VNodes/GFLOP · ${p.fencedWrites} fenced writes`),
      ),
    ),
  );
  renderPipelines();
}

/** ` · kernelDrift 0.67`: the signal that weighs most in a PNode's risk, if any does. */
function topSignal(p) {
  const [top] = Object.entries(p.riskSignals ?? {}).sort((a, b) => b[1] - a[1]);
  return top && top[1] > 0 ? ` · ${top[0]} ${top[1].toFixed(2)}` : '';
}

function riskTitle(p) {
  return Object.entries(p.riskSignals ?? {}).map(([k, v]) => `${k} ${v}`).join('\n');
}

function renderPipelines() {
  const s = state.status;
  const hosts = new Map((s?.vnodes ?? []).map((v) => [v.id, v]));
  const box = $('pipelines');
  if (state.deployments.length === 0) return;
  box.replaceChildren(
    ...state.deployments.map((d) => {
      const row = el('div', { class: 'pipeline', 'data-testid': `pipeline-${d.name}` }, el('span', { class: 'dep' }, `${d.name} (${d.steps} steps × ${d.batch})`));
      d.vnodes.forEach((type, i) => {
        const id = `${d.name}.${i}`;
        const h = hosts.get(id);
        // A chain link is an arrow; a VNode that reads others (a merge, a skip) names them.
        const from = d.inputs?.[i] ?? [i - 1];
        if (i > 0) row.append(el('span', { class: 'arrow', title: `reads ${from.join(', ')}` }, from.length === 1 && from[0] === i - 1 ? '→' : `→ (${from.join('+')})`));
        row.append(
          el(
            'span',
            { class: `vnode ${h ? '' : 'unplaced'}`, style: h ? `--c:${color(h.pnode)}` : '', title: h ? `${id} on ${h.pnode}, epoch ${h.epoch}` : `${id}: not placed`, 'data-testid': `vnode-${id}`, 'data-pnode': h?.pnode ?? '' },
            `${i} ${type.split('.').pop()}`,
          ),
        );
      });
      return row;
    }),
  );
}

function renderLoss() {
  const svg = $('loss');
  const deps = Object.keys(state.losses).filter((d) => state.losses[d].length > 0);
  const dep = state.deployments.map((d) => d.name).reverse().find((n) => deps.includes(n)) ?? deps.at(-1);
  if (!dep) return;
  // Thin a long run out to ~1,000 points: enough for the eye, cheap to redraw live.
  const all = state.losses[dep];
  const every = Math.ceil(all.length / 1000);
  const pts = every > 1 ? all.filter((_, i) => i % every === 0 || i === all.length - 1) : all;
  $('loss-title').textContent = `${dep}, ${all.length} steps, last ${all.at(-1)[1].toFixed(4)}`;
  const maxS = Math.max(1, ...pts.map((p) => p[0]));
  const maxL = Math.max(1e-9, ...pts.map((p) => p[1]));
  const x = (sq) => 40 + (sq / maxS) * 550;
  const y = (l) => 10 + (1 - l / maxL) * 210;
  const path = pts.map(([sq, l], i) => `${i ? 'L' : 'M'}${x(sq).toFixed(1)},${y(l).toFixed(1)}`).join('');
  const ticks = [0, 0.5, 1].map((f) => `<line x1="40" x2="590" y1="${y(f * maxL)}" y2="${y(f * maxL)}" stroke="#2a323c"/><text x="36" y="${y(f * maxL) + 4}" fill="#8a96a3" font-size="10" text-anchor="end">${(f * maxL).toFixed(2)}</text>`).join('');
  svg.dataset.points = String(all.length);
  svg.dataset.lastSeq = String(all.at(-1)[0]);
  const steps = `<text x="40" y="236" fill="#8a96a3" font-size="10">step ${pts[0][0]}</text><text x="590" y="236" fill="#8a96a3" font-size="10" text-anchor="end">step ${maxS}</text>`;
  svg.innerHTML = `${ticks}${steps}<path d="${path}" fill="none" stroke="#58a6ff" stroke-width="1.5" vector-effect="non-scaling-stroke"/>`;
}

const describe = (e) => {
  switch (e.type) {
    case 'joined': return `${e.pnode} joined`;
    case 'dead': return `${e.pnode} declared dead (silent ${e.at - e.lastHeartbeat} ms)`;
    case 'assigned': return `${e.vnode} → ${e.pnode} (epoch ${e.epoch}, ${e.reason}${e.from ? `, from ${e.from}` : ''})`;
    case 'activated': return `${e.vnode} running on ${e.pnode} (${e.ms} ms)`;
    case 'released': return `${e.vnode} released by ${e.pnode} (${e.reason})`;
    case 'passivated': return `${e.vnode} passivated on ${e.pnode}`;
    case 'fenced': return `${e.pnode}: stale ${e.cause} for ${e.vnode} fenced (epoch ${e.epoch})`;
    case 'escalated': return `${e.vnode} escalated on ${e.pnode}: ${e.error}`;
    case 'rejected': return `${e.pnode} rejected a message for ${e.vnode}: ${e.error}`;
    case 'recovered': return `${e.pnode}'s ${e.vnodes.length} VNodes recovered: detect ${e.detectMs} ms, resume ${e.resumeMs} ms`;
    default: return JSON.stringify(e);
  }
};

function addEvent(e) {
  // Activations and passivations are many; the timeline keeps what an operator acts on.
  if (e.type === 'activated' || e.type === 'passivated') return;
  const t = new Date(e.at).toLocaleTimeString();
  let text;
  try { text = describe(e); } catch { text = JSON.stringify(e); } // an event missing a field still shows
  $('events').prepend(el('li', { class: e.type, 'data-type': e.type }, el('span', { class: 't' }, t), text));
  while ($('events').children.length > 300) $('events').lastChild.remove();
}

function connect() {
  const es = new EventSource('/api/events');
  es.onopen = () => { $('conn').textContent = '● live'; $('conn').classList.add('live'); };
  es.onerror = () => { $('conn').textContent = '○ reconnecting…'; $('conn').classList.remove('live'); };
  es.addEventListener('status', (m) => { state.status = JSON.parse(m.data); renderStatus(); });
  es.addEventListener('deployments', (m) => { state.deployments = JSON.parse(m.data); renderPipelines(); renderLoss(); });
  es.addEventListener('history', (m) => {
    const h = JSON.parse(m.data);
    $('events').replaceChildren();
    h.events.forEach(addEvent);
    state.losses = h.losses;
    renderLoss();
  });
  es.addEventListener('cluster', (m) => addEvent(JSON.parse(m.data)));
  let pending = false;
  const redraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; renderLoss(); }); } };
  es.addEventListener('loss', (m) => {
    const { deployment, points } = JSON.parse(m.data);
    (state.losses[deployment] ??= []).push(...points);
    redraw();
  });
  es.addEventListener('loss-reset', (m) => {
    delete state.losses[JSON.parse(m.data).deployment];
    if (Object.keys(state.losses).length === 0) { $('loss').replaceChildren(); $('loss-title').textContent = ''; }
    redraw();
  });
}
connect();
