// The live page: everything comes from GET /events, the ledger's entries feed as server-sent
// events (each SKU's level after every entry, units sold by deducts and commits), its stock
// events (a SKU depleted or replenished) and the service's counters of replayed, rejected and
// conflicting requests. The browser's EventSource reconnects with Last-Event-ID by itself, so a
// dropped connection resumes where it stopped.

const SOLD_KINDS = new Set(['deduct', 'commit']);
/** Seconds of history the chart shows. */
const WINDOW_S = 60;

const skus = new Map();
const perSecond = new Map();
let sold = 0;
let lastAt = 0;

const $ = (id) => document.getElementById(id);

function onEntry(entry) {
  const row = skus.get(entry.sku) ?? { onHand: 0, reserved: 0, sold: 0 };
  row.onHand = entry.onHandAfter;
  row.reserved = entry.reservedAfter;
  if (SOLD_KINDS.has(entry.kind) && entry.onHandDelta < 0) {
    row.sold += -entry.onHandDelta;
    sold += -entry.onHandDelta;
    const second = Math.floor(entry.at / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + -entry.onHandDelta);
  }
  if (entry.kind === 'reverse') {
    row.sold -= entry.onHandDelta;
    sold -= entry.onHandDelta;
  }
  skus.set(entry.sku, row);
  lastAt = Math.max(lastAt, entry.at);
}

function renderTable() {
  const body = $('skus');
  const rows = [...skus.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  body.replaceChildren(...rows.map(([sku, r]) => {
    const tr = document.createElement('tr');
    tr.dataset.sku = sku;
    const available = r.onHand - r.reserved;
    for (const [value, name] of [[sku, 'sku'], [r.onHand, 'onHand'], [r.reserved, 'reserved'], [available, 'available'], [r.sold, 'sold']]) {
      const td = document.createElement('td');
      td.textContent = String(value);
      td.dataset.field = name;
      if (name === 'available' && available <= 0) td.className = 'out';
      tr.append(td);
    }
    return tr;
  }));
  $('sold').textContent = String(sold);
}

function renderChart() {
  const canvas = $('chart');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const end = Math.floor((lastAt || Date.now()) / 1000);
  const values = Array.from({ length: WINDOW_S }, (_, i) => perSecond.get(end - WINDOW_S + 1 + i) ?? 0);
  const top = Math.max(1, ...values);
  const bar = width / WINDOW_S;
  ctx.fillStyle = '#3a7bd5';
  values.forEach((v, i) => {
    const h = (v / top) * (height - 20);
    ctx.fillRect(i * bar + 1, height - h, bar - 2, h);
  });
  ctx.fillStyle = '#888';
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillText(`units sold per second, last ${WINDOW_S} s (peak ${top})`, 6, 14);
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    renderTable();
    renderChart();
  });
}

const events = new EventSource('/events');
events.addEventListener('open', () => { $('status').textContent = 'live'; });
events.addEventListener('error', () => { $('status').textContent = 'reconnecting…'; });
events.addEventListener('entry', (message) => {
  onEntry(JSON.parse(message.data));
  render();
});
const STOCK_EVENTS_SHOWN = 5;
events.addEventListener('stock', (message) => {
  const e = JSON.parse(message.data);
  const li = document.createElement('li');
  li.className = e.type;
  li.textContent = `${e.type} ${e.sku}: available ${e.availableBefore} -> ${e.available} (by ${e.requestId})`;
  const list = $('stock-events');
  list.prepend(li);
  while (list.children.length > STOCK_EVENTS_SHOWN) list.lastElementChild.remove();
});
events.addEventListener('stats', (message) => {
  const stats = JSON.parse(message.data);
  for (const name of ['applied', 'replayed', 'rejected', 'conflicts']) $(name).textContent = String(stats[name]);
});
render();
