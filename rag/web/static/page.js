(config) => {
  /* The chat page's behaviour, run once on load with the page's settings ({maxChars}).
     - [n] markers: on a desktop, show card n of that answer in the panel, highlight and focus it and open its
       原文; on a phone (or narrow window), open the card in a bottom sheet (✕, swipe down, Esc or backdrop).
     - 原文: fetched from api/documents/{id}/view (HTML the server escaped), outline as a table of contents.
     - screen readers: aria labels for the input, markers and bubbles; a live region announces each answer as
       text, markers read as 来源n.
     - a question over the limit is not sent: the page says how long it is and by how much it is over.
     No text from a user or a document is ever put into HTML here: cards are cloned, the 原文 comes escaped. */
  if (window.ragPage) return;
  const maxChars = config.maxChars || 500;
  const phone = window.matchMedia('(max-width: 640px)');
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const numberIn = (el, prefix) => {
    const cls = Array.from(el.classList).find((c) => c.startsWith(prefix));
    return cls ? Number(cls.slice(prefix.length)) : null;
  };

  // --- elements the page script owns -------------------------------------------------------------------
  const live = document.createElement('div');
  live.id = 'rag-live';
  live.className = 'sr-only';
  live.setAttribute('aria-live', 'polite');
  live.setAttribute('role', 'status');
  document.body.appendChild(live);

  const backdrop = document.createElement('div');
  backdrop.id = 'rag-sheet-backdrop';
  backdrop.hidden = true;
  const sheet = document.createElement('div');
  sheet.id = 'rag-sheet';
  sheet.hidden = true;
  sheet.setAttribute('role', 'dialog');
  sheet.setAttribute('aria-modal', 'true');
  sheet.setAttribute('aria-labelledby', 'rag-sheet-title');
  sheet.innerHTML = '<div class="rag-sheet-grip" aria-hidden="true"></div><div class="rag-sheet-head">' +
    '<h2 id="rag-sheet-title">来源</h2><button type="button" class="rag-sheet-close" aria-label="关闭">✕</button>' +
    '</div><div class="rag-sheet-body"></div>';
  document.body.append(backdrop, sheet);
  let sheetOpener = null;

  // --- the length notice: said before sending, and an over-long question is not sent ------------------
  const lengthOf = (text) => Array.from(text.trim().replace(/\s+/g, ' ')).length;
  function lengthNote() {
    let note = $('#rag-length-note');
    const row = $('#rag-input-row');
    if (!note && row) {
      note = document.createElement('p');
      note.id = 'rag-length-note';
      note.setAttribute('role', 'status');
      note.setAttribute('aria-live', 'polite');
      note.hidden = true;
      row.insertAdjacentElement('afterend', note);
    }
    return note;
  }
  // After the box has grown to its new height: the note comes into sight (on a phone it starts below the fold).
  function showNote(note) {
    const at = note.getBoundingClientRect();
    if (at.top < 0 || at.bottom > window.innerHeight) note.scrollIntoView({block: 'nearest', behavior: 'instant'});
  }
  function checkLength() {
    const box = $('#rag-question textarea');
    const note = lengthNote();
    if (!box || !note) return true;
    const n = lengthOf(box.value);
    note.classList.toggle('rag-near', n <= maxChars);
    if (n > maxChars) {
      note.textContent = `问题有 ${n} 字，超出上限 ${maxChars} 字（多了 ${n - maxChars} 字），不会发送。请删减到 ${maxChars} 字以内，一次只问一个要点。`;
    } else if (n > maxChars - 50) {
      note.textContent = `还可以输入 ${maxChars - n} 字（上限 ${maxChars} 字）。`;
    }
    note.hidden = n <= maxChars - 50;
    if (n > maxChars) requestAnimationFrame(() => requestAnimationFrame(() => showNote(note)));
    return n <= maxChars;
  }
  document.addEventListener('input', (e) => { if (e.target.closest('#rag-question')) checkLength(); }, true);
  const block = (e) => { e.preventDefault(); e.stopImmediatePropagation(); $('#rag-length-note')?.focus?.(); };
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.target.closest('#rag-question') && !checkLength()) block(e);
  }, true);
  document.addEventListener('click', (e) => { if (e.target.closest('#rag-send') && !checkLength()) block(e); }, true);

  // --- the panel: one section per answer --------------------------------------------------------------
  function section(turn) { return $(`#rag-sources section.rag-turn[data-turn="${turn}"]`); }
  function showTurn(turn) {
    const target = section(turn);
    if (!target) return null;
    $$('#rag-sources section.rag-turn').forEach((s) => { s.hidden = s !== target; });
    return target;
  }

  // --- the 原文 view ----------------------------------------------------------------------------------
  // The marked sentence a third of the way down its scroller: the text box on a desktop, the sheet on a phone
  // (where the text is not a box of its own).
  function scrollToMark(view, n) {
    const box = $('.rag-doc-text', view);
    const mark = box && ($(`mark[data-n="${n}"]`, box) || $('mark', box));
    if (!box || !mark) return;
    const scroller = box.scrollHeight > box.clientHeight + 1 ? box : view.closest('.rag-sheet-body');
    if (!scroller) return;
    const offset = mark.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    scroller.scrollTop = Math.max(0, scroller.scrollTop + offset - scroller.clientHeight / 3);
  }
  async function loadOriginal(card) {
    const holder = $('.rag-original', card);
    const asWritten = $('.rag-orig-toggle', card)?.getAttribute('aria-pressed') === 'true';
    const script = asWritten ? 'orig' : card.dataset.script;
    if (holder.dataset.loaded === script) return holder;
    holder.innerHTML = '<p class="rag-loading">正在载入原文…</p>';
    const url = `api/documents/${encodeURIComponent(card.dataset.doc)}/view?script=${script}` +
      `&marks=${encodeURIComponent(card.dataset.marks || '')}&current=${card.dataset.n}`;
    try {
      const response = await fetch(url, {headers: {Accept: 'text/html'}});
      if (!response.ok) throw new Error(String(response.status));
      holder.innerHTML = await response.text();  // escaped by the server (rag/web/sources.py)
      holder.dataset.loaded = script;
    } catch (err) {
      holder.textContent = '原文暂时无法载入，请稍后再试。';
      delete holder.dataset.loaded;
    }
    return holder;
  }
  async function openOriginal(card, open = true) {
    const button = $('.rag-open-original', card);
    const holder = $('.rag-original', card);
    if (!button || !holder) return;
    button.setAttribute('aria-expanded', String(open));
    button.textContent = open ? '收起原文' : '查看原文';
    holder.hidden = !open;
    if (!open) return;
    await loadOriginal(card);
    if (card.closest('#rag-sheet')) sheet.classList.add('rag-sheet-tall');
    requestAnimationFrame(() => scrollToMark(holder, card.dataset.n));
  }
  function toggleAsWritten(card) {
    const button = $('.rag-orig-toggle', card);
    const on = button.getAttribute('aria-pressed') !== 'true';
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? '转换用字' : '原文用字';
    $('.rag-shown', card).hidden = on;
    $('.rag-as-written', card).hidden = !on;
    if (!$('.rag-original', card).hidden) openOriginal(card, true);
  }
  function jumpTo(link) {
    const view = link.closest('.rag-original-view');
    const box = view && $('.rag-doc-text', view);
    const head = box && $(`.rag-heading[data-at="${link.dataset.at}"]`, box);
    if (!head) return;
    box.scrollTop = Math.max(0, head.offsetTop - 4);
    head.classList.add('rag-flash');
    setTimeout(() => head.classList.remove('rag-flash'), 1200);
  }

  // --- a marker opens its card ------------------------------------------------------------------------
  function openSource(marker) {
    const turn = numberIn(marker, 'rag-t-');
    const n = numberIn(marker, 'rag-n-');
    const target = showTurn(turn);
    const card = target && $(`.rag-card[data-n="${n}"]`, target);
    if (!card) return;
    if (phone.matches) { openSheet(card, marker); return; }
    $$('.rag-card-active').forEach((c) => c.classList.remove('rag-card-active'));
    card.classList.add('rag-card-active');
    reveal(card);
    card.focus({preventScroll: true});
    openOriginal(card, true).then(() => reveal(card));
  }
  // Scroll the panel (not the page) to the card; the page only moves if the panel itself is out of sight.
  function reveal(card) {
    const panel = $('#rag-panel');
    if (panel && panel.scrollHeight > panel.clientHeight) {
      const top = card.getBoundingClientRect().top - panel.getBoundingClientRect().top + panel.scrollTop;
      panel.scrollTop = Math.max(0, top - 8);
    }
    const box = card.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) card.scrollIntoView({block: 'nearest', behavior: 'instant'});
  }

  // --- the bottom sheet (phone) -----------------------------------------------------------------------
  function openSheet(card, opener) {
    const body = $('.rag-sheet-body', sheet);
    const copy = card.cloneNode(true);
    copy.classList.add('rag-card-active');
    $('.rag-original', copy).hidden = true;
    $('.rag-original', copy).innerHTML = '';
    delete $('.rag-original', copy).dataset.loaded;
    body.replaceChildren(copy);
    $('#rag-sheet-title', sheet).textContent = `来源 ${card.dataset.n}`;
    sheet.classList.remove('rag-sheet-tall');
    sheet.style.transform = '';
    sheet.hidden = false;
    backdrop.hidden = false;
    sheetOpener = opener;
    copy.focus({preventScroll: true});
  }
  function closeSheet() {
    if (sheet.hidden) return;
    sheet.hidden = true;
    backdrop.hidden = true;
    $('.rag-sheet-body', sheet).replaceChildren();
    if (sheetOpener && document.contains(sheetOpener)) sheetOpener.focus({preventScroll: true});
    sheetOpener = null;
  }
  let drag = null;
  sheet.addEventListener('touchstart', (e) => {
    const body = $('.rag-sheet-body', sheet);
    const onBody = body.contains(e.target);
    if (onBody && body.scrollTop > 0) return;  // scrolling the content, not the sheet
    if (e.target.closest('.rag-doc-text')) return;
    drag = {y: e.touches[0].clientY, dy: 0};
  }, {passive: true});
  sheet.addEventListener('touchmove', (e) => {
    if (!drag) return;
    drag.dy = Math.max(0, e.touches[0].clientY - drag.y);
    sheet.style.transform = `translateY(${drag.dy}px)`;
  }, {passive: true});
  sheet.addEventListener('touchend', () => {
    if (!drag) return;
    const far = drag.dy > 80;
    drag = null;
    sheet.style.transform = '';
    if (far) closeSheet();
  });
  backdrop.addEventListener('click', closeSheet);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSheet(); });
  phone.addEventListener('change', () => { if (!phone.matches) closeSheet(); });

  // --- clicks and keys --------------------------------------------------------------------------------
  document.addEventListener('click', (e) => {
    const t = e.target;
    const marker = t.closest('.rag-cite');
    if (marker) { e.preventDefault(); e.stopPropagation(); openSource(marker); return; }
    const card = t.closest('.rag-card');
    if (t.closest('.rag-open-original') && card) {
      openOriginal(card, $('.rag-original', card).hidden);
    } else if (t.closest('.rag-orig-toggle') && card) {
      toggleAsWritten(card);
    } else if (t.closest('.rag-toc-link')) {
      jumpTo(t.closest('.rag-toc-link'));
    } else if (t.closest('.rag-sheet-close')) {
      closeSheet();
    } else {
      const bubble = t.closest('#rag-chat [data-testid="bot"]');
      const tagged = bubble && $('[class*="rag-t-"]', bubble);
      if (tagged) showTurn(numberIn(tagged, 'rag-t-'));  // an earlier answer: its sources come back
    }
  }, true);
  document.addEventListener('keydown', (e) => {
    const marker = (e.key === 'Enter' || e.key === ' ') && e.target.closest && e.target.closest('.rag-cite');
    if (marker) { e.preventDefault(); e.stopPropagation(); openSource(marker); }
  }, true);

  // --- what a screen reader hears ---------------------------------------------------------------------
  function spoken(bubble) {
    const copy = bubble.cloneNode(true);
    $$('.rag-cite', copy).forEach((m) => m.replaceWith(` 来源${numberIn(m, 'rag-n-')} `));
    $$('br', copy).forEach((b) => b.replaceWith('\n'));
    return copy.textContent.replace(/[ \t]+/g, ' ').replace(/\s*\n\s*/g, '\n').trim();
  }
  const setAttr = (el, name, value) => { if (el.getAttribute(name) !== value) el.setAttribute(name, value); };
  let announced = '';
  function enhance() {
    const box = $('#rag-question textarea');
    if (box) setAttr(box, 'aria-label', `输入你的问题（最多 ${maxChars} 字），按回车发送`);
    lengthNote();
    const log = $('#rag-chat [role="log"]');
    if (log) setAttr(log, 'aria-live', 'off');  // answers are announced once, finished, by #rag-live
    $$('#rag-chat .rag-cite').forEach((m) => setAttr(m, 'aria-label', `来源${numberIn(m, 'rag-n-')}`));
    $$('#rag-chat [data-testid="user"]').forEach((u) => setAttr(u, 'aria-label', `提问：${u.textContent.trim()}`));
    const bots = $$('#rag-chat [data-testid="bot"]');
    bots.forEach((b) => setAttr(b, 'aria-label', `回答：${spoken(b)}`));
    const last = bots[bots.length - 1];
    if (last && !last.textContent.includes('▍')) {
      const text = spoken(last);
      const key = `${bots.length}:${text}`;
      if (text && key !== announced) { announced = key; live.textContent = `回答：${text}`; }
    }
  }
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; enhance(); });
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
  enhance();
  window.ragPage = {openSource, closeSheet, checkLength};
}
