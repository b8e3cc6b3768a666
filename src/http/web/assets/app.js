// Aurora's web interface: the parts of the server-rendered pages that need a script —
// adding a page or files to a collection, live crawl progress, and streamed answers.
// Whatever the server or a crawled page says is put in the page as text (textContent),
// never parsed as HTML, and the page's Content-Security-Policy forbids inline script.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

/** A call to this server's JSON API, with the session's CSRF token. */
function api(path, options = {}) {
  const headers = { 'x-csrf-token': csrf, ...(options.headers ?? {}) };
  return fetch(path, { credentials: 'same-origin', ...options, headers });
}

/** What went wrong, from the API's error envelope. */
async function problem(response) {
  if (response.redirected && new URL(response.url).pathname === '/login') {
    return 'You are signed out: reload the page to sign in again.';
  }
  try {
    const body = await response.json();
    return body?.error?.message ?? `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

/** An element with text or children; attributes set as attributes, never as HTML. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** `link` if it is a web address; anything else (javascript:, data:) is not a link. */
function safeHref(link) {
  try {
    const url = new URL(link, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- a collection: add a page, upload files -------------------------------------------------

function ingestSummary(summary) {
  const parts = [
    `${summary.ingested} added`,
    `${summary.skipped} unchanged`,
    `${summary.chunks} chunks`,
  ];
  return parts.join(', ');
}

function rejectedList(summary) {
  if (!summary.rejected?.length) return [];
  return [el('ul', { class: 'errors' }, ...summary.rejected.map((r) =>
    el('li', { text: `${r.url}: ${r.reason}` })))];
}

async function refreshChunkCount(collection) {
  const count = document.getElementById('chunk-count');
  const response = await api('/v1/collections');
  if (!count || !response.ok) return;
  const { collections } = await response.json();
  const found = collections.find((c) => c.name === collection);
  if (found) count.textContent = String(found.chunks);
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', String(on));
}

function setupScrape() {
  const form = document.getElementById('scrape-form');
  if (!form) return;
  const out = document.getElementById('scrape-result');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    const url = form.elements.url.value.trim();
    const collection = form.dataset.collection;
    busy(button, true);
    out.replaceChildren(`Adding ${url}…`);
    try {
      const response = await api('/v1/scrape', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url, ingest: { collection } }),
      });
      if (!response.ok) {
        out.replaceChildren(el('span', { class: 'error', text: await problem(response) }));
        return;
      }
      const page = await response.json();
      out.replaceChildren(`Added “${page.title ?? url}”: ${ingestSummary(page.ingest)}.`,
        ...rejectedList(page.ingest));
      form.reset();
      await refreshChunkCount(collection);
    } catch (error) {
      out.replaceChildren(el('span', { class: 'error', text: `Could not add the page: ${error}` }));
    } finally {
      busy(button, false);
    }
  });
}

function setupUpload() {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const out = document.getElementById('upload-result');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    const files = [...form.elements.files.files];
    if (!files.length) return;
    const body = new FormData();
    for (const file of files) body.append('file', file, file.name);
    const collection = form.dataset.collection;
    busy(button, true);
    out.replaceChildren(`Uploading ${files.length} file${files.length > 1 ? 's' : ''}…`);
    try {
      const response = await api(`/v1/collections/${encodeURIComponent(collection)}/files`, {
        method: 'POST',
        body,
      });
      if (!response.ok) {
        out.replaceChildren(el('span', { class: 'error', text: await problem(response) }));
        return;
      }
      const summary = await response.json();
      out.replaceChildren(`Uploaded: ${ingestSummary(summary)}.`, ...rejectedList(summary));
      form.reset();
      await refreshChunkCount(collection);
    } catch (error) {
      out.replaceChildren(el('span', { class: 'error', text: `Upload failed: ${error}` }));
    } finally {
      busy(button, false);
    }
  });
}

// ---- a crawl job: live progress ------------------------------------------------------------

function showJob(job) {
  const set = (id, text) => {
    const node = document.getElementById(id);
    if (node) node.textContent = String(text);
  };
  const status = document.getElementById('job-status');
  if (status.textContent !== job.status) {
    status.textContent = job.status;
    status.className = `status ${job.status}`;
  }
  const bar = document.getElementById('job-progress');
  bar.max = Math.max(job.total, 1);
  bar.value = job.completed;
  bar.textContent = `${job.percent}%`;
  set('job-done', job.completed);
  set('job-total', job.total);
  set('job-rate', job.rate);
  set('job-errors', job.errors);
  set('job-ingested', job.ingested);
  document.getElementById('job-error-list').replaceChildren(...job.recent_errors.map((e) =>
    el('li', {}, el('span', { class: 'url', text: e.url }), `: ${e.error}`)));
  document.getElementById('cancel-form').hidden = !job.running;
}

async function followJob() {
  const section = document.getElementById('job');
  if (!section || section.dataset.running !== 'true') return;
  const id = section.dataset.job;
  for (;;) {
    await sleep(1000);
    let job;
    try {
      const response = await fetch(`/jobs/${encodeURIComponent(id)}/progress`, {
        credentials: 'same-origin',
        headers: { accept: 'application/json' },
      });
      if (!response.ok || response.redirected) {
        document.getElementById('job-status').textContent = await problem(response);
        return;
      }
      job = await response.json();
    } catch {
      continue; // A blip (a replica restarting): try again on the next tick.
    }
    showJob(job);
    if (!job.running) return;
  }
}

// ---- asking: streamed answers, kept as a conversation for the session -------------------------

const CONVERSATION = 'aurora.conversation';

function savedTurns() {
  try {
    return JSON.parse(sessionStorage.getItem(CONVERSATION) ?? '[]');
  } catch {
    return [];
  }
}

/** The answer's text with its `[n]` markers as links to the cited sources. */
function answerText(text, citations) {
  const byNumber = new Map(citations.map((c) => [c.n, c]));
  const paragraph = el('p', { class: 'text' });
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    paragraph.append(text.slice(last, match.index));
    const citation = byNumber.get(Number(match[1]));
    const href = citation && safeHref(citation.link);
    paragraph.append(href
      ? el('a', { href, class: 'cite', title: citation.title || citation.source_url, text: match[0] })
      : match[0]);
    last = match.index + match[0].length;
  }
  paragraph.append(text.slice(last));
  return paragraph;
}

function citationList(citations) {
  return el('ol', { class: 'citations', 'aria-label': 'Sources' }, ...citations.map((c) => {
    const href = safeHref(c.link);
    const label = `[${c.n}] ${c.title || c.source_url}`;
    const where = c.locator?.label ? ` (${c.locator.label})` : '';
    return el('li', {},
      href ? el('a', { href, class: 'source', text: label }) : el('span', { text: label }),
      where,
      el('span', { class: 'snippet', text: c.snippet ?? '' }));
  }));
}

/** One finished question and answer. */
function turnView(turn) {
  const body = [el('p', { class: 'question', text: turn.question }),
    el('p', { class: 'muted', text: `in ${turn.collection}` })];
  if (turn.error) {
    body.push(el('p', { class: 'error', text: turn.error }));
  } else {
    if (!turn.answered) body.push(el('p', { class: 'unknown', text: 'I don’t know: the collection has nothing that answers this.' }));
    body.push(answerText(turn.answer, turn.citations));
    if (turn.citations.length) body.push(citationList(turn.citations));
  }
  return el('li', { class: turn.answered === false ? 'turn not-answered' : 'turn' }, ...body);
}

/** Reads server-sent events off a fetch response: yields `{event, data}`. */
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll('\r\n', '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

function setupAsk() {
  const form = document.getElementById('ask-form');
  if (!form) return;
  const conversation = document.getElementById('conversation');
  const answer = document.getElementById('answer');
  const button = document.getElementById('ask-button');
  let turns = savedTurns();
  conversation.replaceChildren(...turns.map(turnView));

  document.getElementById('clear-conversation').addEventListener('click', () => {
    turns = [];
    sessionStorage.removeItem(CONVERSATION);
    conversation.replaceChildren();
    answer.replaceChildren();
  });
  form.elements.question.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const question = form.elements.question.value.trim();
    const collection = form.elements.collection.value;
    if (!question) return;
    // The previous answer joins the conversation above the question box.
    if (answer.dataset.turn) conversation.append(turnView(JSON.parse(answer.dataset.turn)));
    delete answer.dataset.turn;
    // Follow-ups are searched with the questions before them in the same collection.
    const history = turns.filter((t) => t.collection === collection && !t.error)
      .map((t) => t.question).slice(-5);
    const turn = { collection, question, answer: '', answered: true, citations: [] };
    const text = el('p', { class: 'text streaming' });
    answer.replaceChildren(el('p', { class: 'question', text: question }), text);
    answer.setAttribute('aria-busy', 'true');
    busy(button, true);
    try {
      const response = await api('/v1/query', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ question, collection, stream: true, history }),
      });
      if (!response.ok) throw new Error(await problem(response));
      for await (const { event: kind, data } of events(response)) {
        const payload = JSON.parse(data);
        if (kind === 'token') {
          text.append(payload.text);
        } else if (kind === 'done') {
          turn.answer = payload.answer;
          turn.answered = payload.answered;
          turn.citations = payload.citations;
        } else if (kind === 'error') {
          throw new Error(payload?.error?.message ?? 'the answer failed');
        }
      }
      form.elements.question.value = '';
    } catch (error) {
      turn.error = error.message ?? String(error);
    } finally {
      busy(button, false);
      answer.setAttribute('aria-busy', 'false');
    }
    // The streamed text is replaced by the finished answer, its markers now links.
    answer.replaceChildren(...turnView(turn).childNodes);
    answer.dataset.turn = JSON.stringify(turn);
    turns.push(turn);
    sessionStorage.setItem(CONVERSATION, JSON.stringify(turns));
    form.elements.question.focus();
  });
}

setupScrape();
setupUpload();
setupAsk();
followJob();
