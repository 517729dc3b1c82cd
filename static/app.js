// The chat-server browser client: plain JavaScript, no dependencies. Everything users typed is
// put into the page with textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
};

const PAGE = 30;
const LOBBY = 'g:0';
// Message types (docs/protocol.md) and what a conversation list shows for one without text.
const TYPE = { text: 1, image: 2, voice: 3, video: 4, location: 5, file: 6, system: 10 };
const PREVIEW = { 2: '[image]', 3: '[voice]', 4: '[video]', 5: '[location]', 6: '[file]' };
// The longest play length a voice or video message may announce (attachment.duration_ms).
const MAX_DURATION_MS = 3600000;
// The reactions the picker offers, fully qualified (the server stores that form, so a count
// from the server and one from the picker compare equal).
const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
// A reply's excerpt of the message it answers: the server's length, in grapheme clusters.
const EXCERPT_CHARS = 100;
// The most @mention suggestions shown at once, and the most older pages a jump to a message
// loads while looking for it.
const MENTION_SUGGESTIONS = 8;
const JUMP_PAGES = 20;
const SEARCH_PAGE = 20;
// How far back (ms) a resume asks for changes before the first one the page may have missed:
// the server's clock is known to the second only (the Date header).
const CHANGES_MARGIN_MS = 5000;

const state = {
  me: null,
  ws: null,
  connected: false,
  everConnected: false,
  reconnectDelay: 500,
  reconnectTimer: null,
  loggingOut: false,
  requests: new Map(), // client_msg_id -> {resolve}
  nextId: 1,
  conversations: new Map(), // id -> {conversation, kind, title, peerId, groupId, last, unread}
  current: null,
  messages: new Map(), // conversation -> Map(id -> message)
  oldestSeq: new Map(), // conversation -> oldest seq loaded
  hasMore: new Map(),
  lastSeen: new Map(), // conversation -> highest seq seen (for resume)
  peerRead: new Map(), // conversation -> highest seq the others have read
  delivery: new Map(), // message id -> 'sent' | 'delivered'
  typingTimer: null,
  lastTypingSent: 0,
  // The server pushes at most one typing notice per user and conversation per
  // antispam.typing_interval_secs (GET /user/me/limits tells): frames are paced a little
  // slower than that, so none is dropped, and a peer's notice stays up for two intervals.
  typingEveryMs: 3000,
  noticeTimer: null,
  loadingOlder: false,
  names: new Map(), // user id -> display name, filled on demand
  attachment: null, // the file staged in the composer: {file, progress, uploaded, abort, done}
  // message id -> its rendered attachment; kept across renders so a playing voice or video
  // message is not restarted (or an image reloaded) whenever the list is redrawn.
  media: new Map(),
  // Message actions.
  replyTo: null, // the message the composer answers
  editing: null, // {message, draft}: the message being edited, and the composer text before
  pickerFor: null, // the message id whose reaction picker is open
  actionsFor: null, // the message id whose actions were opened by a tap (touch screens)
  highlighted: null, // the message id a jump scrolled to, shown for a moment
  highlightTimer: null,
  members: new Map(), // group conversation -> its members [{user_id, name, user_name, role}]
  pins: new Map(), // conversation -> its pins, newest first
  pinIndex: 0, // which pin of the open chat its pinned bar shows
  mention: null, // the open @completion: {start, options, active}
  forwarding: null, // the message the forward dialog is for
  search: null, // the last message search: {q, conversation, hits, next}
  clockOffset: 0, // the server's clock less ours, ms (from the Date of its answers)
  changedSince: null, // op 7's changed_since: the edits, reactions and recalls not yet seen
};

// The display name of a user: known at once, or fetched once and shown on the next render.
function nameOf(userId) {
  const id = String(userId);
  if (state.me && id === String(state.me.id)) return state.me.nick_name;
  const known = state.names.get(id);
  if (typeof known === 'string') return known;
  // The peer of a 1:1 chat is named by its title, once the conversation list gave it.
  const direct = state.me && state.conversations.get(directId(state.me.id, id));
  if (direct && direct.title !== direct.conversation && direct.title !== 'Chat') return direct.title;
  if (known === undefined) {
    state.names.set(id, null);
    api('GET', `/users/${encodeURIComponent(id)}`).then((result) => {
      if (!result.ok) return;
      state.names.set(id, result.data.nick_name);
      renderConversations();
      if (state.current) { renderMessages(false); renderComposerBars(); }
      loadRequests();
    });
  }
  return `#${id}`;
}

// ---- HTTP ---------------------------------------------------------------------------------

async function api(method, path, body) {
  const options = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    // No connection: answered like a refusal, so no caller leaves a promise rejected.
    return { status: 0, ok: false, data: { message: 'Not connected' } };
  }
  const date = Date.parse(response.headers.get('Date') || '');
  if (Number.isFinite(date)) state.clockOffset = date - Date.now();
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  return { status: response.status, ok: response.ok, data: data || {} };
}

function showFieldErrors(prefix, data, fallback) {
  document.querySelectorAll(`[data-testid^="${prefix}"]`).forEach((p) => { p.textContent = ''; });
  const target = data.field && document.querySelector(`[data-testid="${prefix}${data.field}"]`);
  (target || fallback).textContent = data.message || 'Something went wrong';
}

// ---- Auth ---------------------------------------------------------------------------------

function showAuth() {
  $('main').hidden = true;
  $('auth').hidden = false;
  $('login-form').hidden = false;
  $('register-form').hidden = true;
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  $('login-form').querySelector('[data-testid=login-error]').textContent = '';
  const result = await api('POST', '/user/login', {
    user_name: form.user_name.value.trim(),
    password: form.password.value,
  });
  if (!result.ok) {
    form.querySelector('[data-testid=login-error]').textContent = result.data.message || 'Login failed';
    return;
  }
  form.password.value = '';
  await enter(result.data.user);
});

$('register-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {
    user_name: form.user_name.value.trim(),
    nick_name: form.nick_name.value,
    password: form.password.value,
  };
  if (form.email.value.trim()) body.email = form.email.value.trim();
  const result = await api('POST', '/user/register', body);
  if (!result.ok) {
    showFieldErrors('error-', result.data, form.querySelector('[data-testid=register-error]'));
    return;
  }
  form.querySelectorAll('.error').forEach((p) => { p.textContent = ''; });
  const login = await api('POST', '/user/login', { user_name: body.user_name, password: body.password });
  if (login.ok) await enter(login.data.user);
});

$('login-form').querySelector('[data-testid=show-register]').addEventListener('click', () => {
  $('login-form').hidden = true;
  $('register-form').hidden = false;
});
$('register-form').querySelector('[data-testid=show-login]').addEventListener('click', () => {
  $('register-form').hidden = true;
  $('login-form').hidden = false;
});

$('logout').addEventListener('click', async () => {
  state.loggingOut = true;
  discardAttachment(); // while the session still may delete the upload
  await api('POST', '/user/logout');
  leave();
});

function leave() {
  state.loggingOut = true;
  clearTimeout(state.reconnectTimer);
  if (state.ws) state.ws.close(1000);
  state.ws = null;
  state.me = null;
  state.conversations.clear();
  state.messages.clear();
  state.media.clear();
  state.members.clear();
  state.pins.clear();
  state.current = null;
  state.replyTo = null;
  state.editing = null;
  state.pickerFor = null;
  closeMentions();
  if ($('forward').open) $('forward').close();
  clearMessageSearch();
  $('message-search').value = '';
  discardAttachment();
  renderComposerBars();
  showAuth();
}

$('open-settings').addEventListener('click', () => {
  $('settings-form').reset();
  $('settings-ok').textContent = '';
  document.querySelectorAll('[data-testid^="settings-error-"]').forEach((p) => { p.textContent = ''; });
  $('settings').showModal();
});
$('settings-close').addEventListener('click', () => $('settings').close());
$('settings-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const result = await api('POST', '/user/set_password', {
    old_password: form.old_password.value,
    new_password: form.new_password.value,
  });
  document.querySelectorAll('[data-testid^="settings-error-"]').forEach((p) => { p.textContent = ''; });
  if (!result.ok) {
    const field = result.data.code === 'wrong_password' ? 'old_password' : result.data.field;
    const target = document.querySelector(`[data-testid="settings-error-${field || 'new_password'}"]`);
    target.textContent = result.data.message || 'Could not change the password';
    return;
  }
  form.reset();
  $('settings-ok').textContent = 'Password changed. Your other sessions were signed out.';
});

async function enter(user) {
  state.me = user;
  state.loggingOut = false;
  // What is loaded from now on is as it is now: a resume asks for what changed after this.
  state.changedSince = Date.now() + state.clockOffset - CHANGES_MARGIN_MS;
  $('me').textContent = user.nick_name;
  $('auth').hidden = true;
  $('main').hidden = false;
  await Promise.all([loadConversations(), loadRequests(), loadFriends(), loadTypingPace()]);
  connect();
}

async function loadTypingPace() {
  const result = await api('GET', '/user/me/limits');
  const secs = result.ok && result.data.limits ? Number(result.data.limits.typing_interval_secs) : NaN;
  if (Number.isFinite(secs) && secs >= 0) state.typingEveryMs = secs * 1000;
}

// ---- Sidebar ------------------------------------------------------------------------------

function conversationTitle(item) {
  if (item.kind === 'group') return item.group && item.group.name ? item.group.name : 'Group';
  return item.peer ? item.peer.nick_name : 'Chat';
}

function peerOf(conversation) {
  const [kind, a, b] = conversation.split(':');
  if (kind !== 'u') return null;
  return a === String(state.me.id) ? b : a;
}

function upsertConversation(id, fields) {
  const existing = state.conversations.get(id) || {
    conversation: id, kind: id.startsWith('g:') ? 'group' : 'user', title: id, last: null, unread: 0, mentions: 0, at: 0,
  };
  Object.assign(existing, fields);
  state.conversations.set(id, existing);
  return existing;
}

async function loadConversations() {
  const result = await api('GET', '/conversations?limit=100');
  if (result.ok) {
    for (const item of result.data.conversations) {
      upsertConversation(item.conversation, {
        kind: item.kind,
        title: conversationTitle(item),
        last: item.last_message,
        unread: item.unread,
        mentions: item.mentions_unread || 0,
        at: item.last_message ? Date.parse(item.last_message.created_at) : 0,
      });
      if (item.last_message) noteSeen(item.conversation, item.last_message.seq);
    }
  }
  if (!state.conversations.has(LOBBY)) upsertConversation(LOBBY, { kind: 'group', title: 'Lobby' });
  const lobby = state.conversations.get(LOBBY);
  if (lobby.title === 'Group' || lobby.title === LOBBY) lobby.title = 'Lobby';
  renderConversations();
}

function renderConversations() {
  const list = $('conversation-list');
  const items = [...state.conversations.values()].sort((a, b) => (b.at - a.at) || a.conversation.localeCompare(b.conversation));
  list.replaceChildren(...items.map((item) => {
    const badge = item.unread > 0 ? el('span', { class: 'badge', 'data-testid': 'unread-badge', text: String(item.unread) }) : null;
    const mentions = item.unread > 0 && item.mentions > 0 ? el('span', {
      class: 'badge mention', 'data-testid': 'mention-badge', 'data-count': String(item.mentions),
      title: `${item.mentions} unread mention${item.mentions === 1 ? '' : 's'} of you`,
      'aria-label': `${item.mentions} unread mention${item.mentions === 1 ? '' : 's'} of you`, text: '@',
    }) : null;
    const preview = item.last ? previewOf(item.last) : '';
    return el('li', {
      'data-testid': 'conversation-item',
      'data-conversation': item.conversation,
      class: item.conversation === state.current ? 'active' : '',
      onclick: () => openConversation(item.conversation),
    },
    el('span', { class: 'title', 'data-testid': 'conversation-title', text: item.title }),
    mentions,
    badge,
    el('span', { class: 'last', 'data-testid': 'last-message', text: preview }));
  }));
}

async function loadRequests() {
  const result = await api('GET', '/friends/requests?direction=incoming&status=pending');
  if (!result.ok) return;
  $('friend-requests').replaceChildren(...result.data.requests.map((request) => el('li', {
    'data-testid': 'friend-request', 'data-request-id': request.id,
  },
  el('span', { class: 'title', text: `${nameOf(request.from)}${request.message ? ': ' + request.message : ''}` }),
  el('button', { type: 'button', 'data-testid': 'accept-request', text: 'Accept', onclick: () => decide(request.id, 'accept') }),
  el('button', { type: 'button', 'data-testid': 'reject-request', text: 'Reject', onclick: () => decide(request.id, 'reject') }))));
}

async function decide(id, decision) {
  await api('POST', `/friends/requests/${id}/${decision}`);
  await Promise.all([loadRequests(), loadFriends()]);
}

async function loadFriends() {
  const result = await api('GET', '/friends?limit=100');
  if (!result.ok) return;
  $('friends').replaceChildren(...result.data.friends.map((friend) => el('li', {
    'data-testid': 'friend-item', 'data-user-id': friend.id, class: 'clickable',
    onclick: () => startChat(friend),
  }, el('span', { class: 'title', text: friend.remark || friend.nick_name }),
  el('span', { class: 'state' + (friend.online ? ' online' : ''), text: friend.online ? 'online' : 'offline' }))));
}

function directId(a, b) {
  const [x, y] = [Number(a), Number(b)].sort((p, q) => p - q);
  return `u:${x}:${y}`;
}

function startChat(profile) {
  const id = directId(state.me.id, profile.id);
  upsertConversation(id, { kind: 'user', title: profile.nick_name });
  renderConversations();
  openConversation(id);
}

$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const q = $('user-search').value.trim();
  if (!q) return;
  const result = await api('GET', `/users?q=${encodeURIComponent(q)}`);
  if (!result.ok) { $('sidebar-error').textContent = result.data.message || 'Search failed'; return; }
  $('sidebar-error').textContent = '';
  $('search-results').replaceChildren(...result.data.users.filter((u) => u.id !== state.me.id).map((user) => el('li', {
    'data-testid': 'search-result', 'data-user-id': user.id,
  }, el('span', { class: 'title', text: `${user.nick_name} (@${user.user_name})` }),
  el('button', { type: 'button', 'data-testid': 'start-chat', text: 'Chat', onclick: () => startChat(user) }),
  user.is_friend ? null : el('button', {
    type: 'button', 'data-testid': 'add-friend', text: 'Add',
    onclick: async (e) => {
      const sent = await api('POST', '/friends/requests', { user_id: user.id });
      e.target.textContent = sent.ok ? 'Requested' : (sent.data.message || 'Failed');
      e.target.disabled = true;
      if (sent.ok) loadFriends();
    },
  }))));
});

$('create-group-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('group-name-input').value.trim();
  if (!name) return;
  const result = await api('POST', '/groups', { name });
  if (!result.ok) { $('sidebar-error').textContent = result.data.message || 'Could not create the group'; return; }
  $('group-name-input').value = '';
  const id = `g:${result.data.group.id}`;
  upsertConversation(id, { kind: 'group', title: result.data.group.name, at: Date.now() });
  renderConversations();
  openConversation(id);
});

$('join-group-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const id = $('join-group-input').value.trim();
  if (!id) return;
  const result = await api('POST', `/groups/${encodeURIComponent(id)}/join`, {});
  if (!result.ok) { $('sidebar-error').textContent = result.data.message || 'Could not join'; return; }
  $('sidebar-error').textContent = result.data.status === 'pending' ? 'Request sent; a manager will decide.' : '';
  $('join-group-input').value = '';
  await loadConversations();
  if (result.data.status === 'joined') openConversation(`g:${id}`);
});

// ---- WebSocket ----------------------------------------------------------------------------

function setConnection(text) {
  const node = $('connection-state');
  node.textContent = text;
  node.className = 'state ' + text;
}

function connect() {
  if (!state.me) return;
  clearTimeout(state.reconnectTimer);
  setConnection(state.everConnected ? 'reconnecting' : 'connecting');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  ws.addEventListener('open', async () => {
    state.connected = true;
    state.reconnectDelay = 500;
    const catchUp = state.everConnected;
    state.everConnected = true;
    setConnection('online');
    if (catchUp) await resume();
  });
  ws.addEventListener('message', (event) => onFrame(event.data));
  ws.addEventListener('close', (event) => {
    if (state.ws !== ws) return;
    state.connected = false;
    for (const pending of state.requests.values()) pending.resolve({ code: 0, msg: 'connection lost' });
    state.requests.clear();
    if (state.loggingOut || !state.me) return;
    if (event.code === 1008) { leave(); return; } // the session was revoked
    setConnection('reconnecting');
    state.reconnectTimer = setTimeout(connect, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
  });
}

function request(frame) {
  return new Promise((resolve) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      resolve({ code: 0, msg: 'not connected' });
      return;
    }
    const id = frame.client_msg_id || `r-${state.nextId++}`;
    frame.client_msg_id = id;
    state.requests.set(id, { resolve });
    state.ws.send(JSON.stringify(frame));
  });
}

function onFrame(text) {
  let frame;
  try { frame = JSON.parse(text); } catch { return; }
  if (frame.event) { onEvent(frame.event, frame.data); return; }
  const pending = frame.client_msg_id && state.requests.get(frame.client_msg_id);
  if (pending) {
    state.requests.delete(frame.client_msg_id);
    pending.resolve(frame);
  }
}

function noteSeen(conversation, seq) {
  if (seq > (state.lastSeen.get(conversation) || 0)) state.lastSeen.set(conversation, seq);
}

// After a reconnect: the messages sent meanwhile, and (changed_since) what changed in the
// messages held here: edits, reactions, quotes brought up to date, recalls.
async function resume() {
  let since = Object.fromEntries(state.lastSeen);
  let retriedWithout = false;
  for (let round = 0; round < 20; round += 1) {
    const frame = { op_type: 7, since };
    if (state.changedSince !== null) frame.changed_since = state.changedSince;
    const reply = await request(frame);
    if (reply.code !== 200) {
      if (reply.code === 40000 && frame.changed_since !== undefined) {
        // Too much changed to list (or a server without changed_since): the messages still
        // resume, and changes are followed from now on.
        state.changedSince = reply.data && reply.data.field === 'changed_since'
          ? Date.now() + state.clockOffset - CHANGES_MARGIN_MS
          : null;
        continue;
      }
      if ((reply.code === 40003 || reply.code === 40004) && !retriedWithout) {
        // A conversation held here is not the user's any more (left, removed, dissolved):
        // resume the ones the server lists now; the others it resumes from the read position.
        retriedWithout = true;
        const listed = await api('GET', '/conversations?limit=200');
        if (!listed.ok) return;
        const mine = new Set(listed.data.conversations.map((c) => c.conversation));
        for (const id of [...state.lastSeen.keys()]) if (!mine.has(id)) state.lastSeen.delete(id);
        since = Object.fromEntries(Object.entries(since).filter(([id]) => mine.has(id)));
        continue;
      }
      return;
    }
    for (const message of reply.data.messages) receive(message, false);
    for (const message of reply.data.changed || []) applyEdit(message, true);
    for (const gone of reply.data.recalled || []) removeMessage(gone.conversation, gone.id, true);
    since = reply.data.since;
    if (reply.data.changed_until) state.changedSince = reply.data.changed_until;
    if (!reply.data.has_more && !reply.data.changed_more) break;
  }
  await Promise.all([loadConversations(), refreshPins()]);
}

// Pins have no part in a resume: the open chat asks for its pins again, others when opened.
async function refreshPins() {
  for (const id of [...state.pins.keys()]) if (id !== state.current) state.pins.delete(id);
  if (state.current) await loadPins(state.current);
}

function onEvent(kind, data) {
  switch (kind) {
    case 'message': receive(data, true); break;
    case 'read': onRead(data); break;
    case 'deleted': removeMessage(data.conversation, data.id, data.scope === 'all'); break;
    case 'edited': applyEdit(data, false); break;
    case 'reaction': applyReaction(data); break;
    case 'pinned': case 'unpinned': pinsChanged(data.conversation); break;
    case 'typing': showTyping(data); break;
    case 'friend_request': case 'friend': loadRequests(); loadFriends(); break;
    case 'group': groupChanged(data); break;
    case 'gap': fillGap(data); break;
    default: break;
  }
}

// The server gave up publishing seqs from..to of a conversation live (their process failed):
// they are stored, so fetch them (op 7 from just before the gap, page after page).
async function fillGap(gap) {
  let since = { [gap.conversation]: gap.from - 1 };
  for (let round = 0; round < 20; round += 1) {
    const reply = await request({ op_type: 7, since });
    if (reply.code !== 200) return;
    for (const message of reply.data.messages) {
      if (message.conversation === gap.conversation) receive(message, false);
    }
    if (!reply.data.has_more) return;
    since = { [gap.conversation]: reply.data.since[gap.conversation] };
  }
}

function receive(message, live) {
  const conversation = message.conversation;
  noteSeen(conversation, message.seq);
  const known = state.messages.get(conversation);
  const fresh = !(known && known.has(message.id));
  if (known) known.set(message.id, message);
  const mine = message.from === String(state.me.id);
  const item = upsertConversation(conversation, {});
  if (!item.last || message.seq >= item.last.seq) {
    item.last = message;
    item.at = Date.parse(message.created_at);
  }
  if (item.title === conversation) {
    item.title = item.kind === 'group' ? (conversation === LOBBY ? 'Lobby' : 'Group') : 'Chat';
    if (item.kind === 'user') loadConversations();
  }
  if (fresh && !mine && message.type !== 10) {
    if (conversation === state.current && document.visibilityState !== 'hidden') markRead(conversation, message.seq);
    else {
      item.unread += 1;
      if (message.mentioned || mentionsMe(message)) item.mentions = (item.mentions || 0) + 1;
    }
  }
  renderConversations();
  if (conversation === state.current && fresh) {
    renderMessages(live);
    if (!mine) hideTyping();
  }
}

function onRead(data) {
  if (data.user_id === String(state.me.id)) {
    const item = state.conversations.get(data.conversation);
    if (item) { item.unread = 0; item.mentions = 0; renderConversations(); }
    return;
  }
  if (data.seq > (state.peerRead.get(data.conversation) || 0)) state.peerRead.set(data.conversation, data.seq);
  if (data.conversation === state.current) renderMessages(false);
}

// A message deleted for me, or (`recalled`) for everyone: replies to a recalled message say so,
// and a reply or edit of it in the composer is dropped.
function removeMessage(conversation, id, recalled) {
  const known = state.messages.get(conversation);
  state.media.delete(id);
  let changed = !!known && known.delete(id);
  if (recalled && known) {
    for (const message of known.values()) {
      if (message.reply_to && message.reply_to.id === id && !message.reply_to.recalled) {
        message.reply_to = { ...message.reply_to, excerpt: null, recalled: true };
        changed = true;
      }
    }
  }
  if (state.replyTo && state.replyTo.id === id) state.replyTo = null;
  if (state.editing && state.editing.message.id === id) cancelEdit();
  renderComposerBars();
  if (changed && conversation === state.current) renderMessages(false);
}

function showTyping(data) {
  if (data.conversation !== state.current || data.user_id === String(state.me.id)) return;
  const item = state.conversations.get(data.conversation);
  const who = item && item.kind === 'user' ? item.title : nameOf(data.user_id);
  $('typing').textContent = `${who} is typing…`;
  $('typing').hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, 2 * state.typingEveryMs + 500);
}

function hideTyping() {
  $('typing').hidden = true;
}

// ---- Chat view ----------------------------------------------------------------------------

async function openConversation(id) {
  if (state.current !== id) {
    // A reply or an edit belongs to the chat it was started in.
    state.replyTo = null;
    if (state.editing) cancelEdit();
    state.pickerFor = null;
    state.actionsFor = null;
    state.pinIndex = 0;
    closeMentions();
  }
  state.current = id;
  hideTyping();
  $('antispam-notice').hidden = true;
  $('members').hidden = true;
  renderComposerBars();
  renderPinned();
  $('message-search-scope-label').hidden = false;
  const item = upsertConversation(id, {});
  $('chat-title').textContent = item.title;
  $('show-members').hidden = item.kind !== 'group' || id === LOBBY;
  $('chat').hidden = false;
  $('empty').hidden = true;
  document.querySelector('.layout').classList.add('chatting');
  if (!state.messages.has(id)) {
    state.messages.set(id, new Map());
    await loadOlder(id);
  }
  if (id !== state.current) return;
  renderMessages(true);
  const newest = [...state.messages.get(id).values()].reduce((max, m) => Math.max(max, m.seq), 0);
  item.unread = 0;
  item.mentions = 0;
  renderConversations();
  if (newest > 0) markRead(id, newest);
  $('composer').focus();
  // Who may be mentioned (and whether I may pin) and what is pinned, shown when they arrive.
  if (item.kind === 'group' && id !== LOBBY && !state.members.has(id)) loadMembers(id);
  if (!state.pins.has(id)) loadPins(id);
  else renderPinned();
}

async function loadOlder(id) {
  if (state.loadingOlder || state.hasMore.get(id) === false) return 0;
  state.loadingOlder = true;
  try {
    const frame = { op_type: 2, conversation: id, limit: PAGE };
    if (state.oldestSeq.has(id)) frame.before_seq = state.oldestSeq.get(id);
    const reply = await request(frame);
    if (reply.code !== 200) return 0;
    const known = state.messages.get(id);
    for (const message of reply.data.messages) {
      known.set(message.id, message);
      noteSeen(id, message.seq);
      const oldest = state.oldestSeq.get(id);
      if (oldest === undefined || message.seq < oldest) state.oldestSeq.set(id, message.seq);
    }
    state.hasMore.set(id, reply.data.has_more);
    return reply.data.messages.length;
  } finally {
    state.loadingOlder = false;
  }
}

$('messages').addEventListener('scroll', async () => {
  const box = $('messages');
  const id = state.current;
  if (box.scrollTop > 40 || !id || state.loadingOlder) return;
  const before = box.scrollHeight;
  const added = await loadOlder(id);
  if (added > 0 && id === state.current) {
    renderMessages(false);
    box.scrollTop = box.scrollHeight - before;
  }
});

function statusOf(message) {
  const conversation = message.conversation;
  if (conversation.startsWith('u:') && (state.peerRead.get(conversation) || 0) >= message.seq) return 'read';
  return state.delivery.get(message.id) || 'sent';
}

function renderMessages(stickToBottom) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  // The list is drawn anew: keep the keyboard focus on the same control of the same message.
  const active = document.activeElement && box.contains(document.activeElement) ? document.activeElement : null;
  const focus = active && {
    id: active.closest('[data-message-id]')?.getAttribute('data-message-id'),
    testid: active.getAttribute('data-testid'),
    emoji: active.getAttribute('data-emoji'),
  };
  const known = state.messages.get(state.current) || new Map();
  const ordered = [...known.values()].sort((a, b) => a.seq - b.seq);
  const pinned = new Set((state.pins.get(state.current) || []).map((p) => p.message.id));
  box.replaceChildren(...ordered.map((message) => messageView(message, pinned.has(message.id))));
  if (focus && focus.id) {
    const selector = `[data-message-id="${CSS.escape(focus.id)}"]`
      + (focus.testid ? ` [data-testid="${CSS.escape(focus.testid)}"]` : '')
      + (focus.emoji ? `[data-emoji="${CSS.escape(focus.emoji)}"]` : '');
    const again = box.querySelector(selector) || box.querySelector(`[data-message-id="${CSS.escape(focus.id)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function messageView(message, pinned) {
  const mine = message.from === String(state.me.id);
  const common = {
    'data-testid': 'message', 'data-message-id': message.id, 'data-seq': String(message.seq),
    'data-mine': String(mine), 'data-type': String(message.type),
  };
  if (message.type === TYPE.system) {
    const notice = noticeOf(message);
    const target = notice && notice.message_id;
    return el('li', { ...common, class: 'system' },
      target
        ? el('button', {
          type: 'button', class: 'link notice-link', 'data-testid': 'message-content', text: describeNotice(message),
          onclick: () => jumpTo(message.conversation, target),
        })
        : el('span', { 'data-testid': 'message-content', text: describeNotice(message) }));
  }
  const group = message.conversation.startsWith('g:');
  const sender = !mine && group
    ? el('span', { class: 'meta sender', text: message.nickname || nameOf(message.from) }) : null;
  const forwarded = message.forwarded
    ? el('span', {
      class: 'forwarded', 'data-testid': 'message-forwarded',
      text: message.forwarded_from ? `Forwarded from ${nameOf(message.forwarded_from.user_id)}` : 'Forwarded',
    }) : null;
  const body = message.type === TYPE.text ? null : mediaOf(message);
  // Text, or the caption under the media (absent when there is none).
  const content = body && !message.content ? null
    : el('div', { class: 'content', 'data-testid': 'message-content' }, ...contentWithMentions(message));
  const meta = el('span', { class: 'meta' },
    pinned ? el('span', { class: 'pinned-mark', 'data-testid': 'message-pinned', title: 'Pinned', text: 'pinned' }) : null,
    message.edited_at ? el('span', {
      class: 'edited', 'data-testid': 'message-edited', text: '(edited)',
      title: `Edited ${new Date(message.edited_at).toLocaleString()}`,
    }) : null,
    el('span', { text: new Date(message.created_at).toLocaleTimeString() }),
    mine ? el('span', { 'data-testid': 'message-status', text: statusOf(message) }) : null);
  const toMe = mentionsMe(message);
  const classes = [mine ? 'mine' : ''];
  if (toMe) classes.push('mentions-me');
  if (message.id === state.highlighted) classes.push('highlight');
  if (message.id === state.actionsFor || message.id === state.pickerFor) classes.push('show-actions');
  return el('li', {
    ...common,
    class: classes.filter(Boolean).join(' '),
    tabindex: '0',
    'data-mentions-me': String(toMe),
    'data-highlighted': String(message.id === state.highlighted),
  }, sender, forwarded, quoteView(message), body, content, reactionsView(message), meta,
  actionsView(message, mine, pinned),
  message.id === state.pickerFor ? pickerView(message) : null);
}

// The quoted message above a reply's text; a click shows the original in the chat.
function quoteView(message) {
  const quoted = message.reply_to;
  if (!quoted) return null;
  const author = el('span', { class: 'quote-author', 'data-testid': 'quote-author', text: nameOf(quoted.from) });
  const excerpt = quoted.recalled
    ? el('span', { class: 'quote-excerpt recalled', 'data-testid': 'quote-excerpt', text: 'Message recalled' })
    : el('span', { class: 'quote-excerpt', 'data-testid': 'quote-excerpt', text: quoted.excerpt || PREVIEW[quoted.type] || '' });
  return el('button', {
    type: 'button', class: 'quote', 'data-testid': 'message-quote', 'data-reply-to': quoted.id,
    'data-recalled': String(!!quoted.recalled),
    title: quoted.recalled ? 'The message this answers was recalled' : 'Show the message this answers',
    onclick: () => { if (!quoted.recalled) jumpTo(message.conversation, quoted.id); },
  }, author, excerpt);
}

// The reactions under a bubble: one toggle per emoji, pressed when I am among them.
function reactionsView(message) {
  const reactions = (message.reactions || []).filter((r) => r.count > 0);
  if (reactions.length === 0) return null;
  return el('div', { class: 'reactions', 'data-testid': 'reactions' }, ...reactions.map((r) => el('button', {
    type: 'button', class: r.me ? 'reaction me' : 'reaction', 'data-testid': 'reaction', 'data-emoji': r.emoji,
    'data-count': String(r.count), 'aria-pressed': String(!!r.me),
    'aria-label': `${r.emoji} ${r.count}${r.me ? ', you reacted: remove yours' : ': add yours'}`,
    onclick: () => react(message, r.emoji, !r.me),
  }, el('span', { class: 'emoji', text: r.emoji }), el('span', { class: 'count', 'data-testid': 'reaction-count', text: String(r.count) }))));
}

// The actions of one message: shown on hover, on keyboard focus, or after a tap on the bubble.
function actionsView(message, mine, pinned) {
  const button = (testid, text, label, onclick) => el('button', {
    type: 'button', 'data-testid': testid, text, title: label, 'aria-label': label, onclick,
  });
  return el('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Message actions', 'data-testid': 'message-actions' },
    button('message-reply', 'Reply', 'Reply to this message', () => startReply(message)),
    button('message-react', 'React', 'Add a reaction', () => togglePicker(message.id)),
    button('message-forward', 'Forward', 'Forward to another chat', () => openForward(message)),
    mine && editable(message) ? button('message-edit', 'Edit', 'Edit this message', () => startEdit(message)) : null,
    canPin(message.conversation) ? (pinned
      ? button('message-unpin', 'Unpin', 'Unpin this message', () => unpin(message.conversation, message.id))
      : button('message-pin', 'Pin', 'Pin this message at the top of the chat', () => pin(message))) : null,
    button('message-delete', 'Delete', 'Delete for me', () => deleteMessage(message, false)),
    mine ? button('message-recall', 'Recall', 'Recall for everyone', () => deleteMessage(message, true)) : null);
}

function pickerView(message) {
  const mine = new Set((message.reactions || []).filter((r) => r.me).map((r) => r.emoji));
  return el('div', { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction', 'data-testid': 'reaction-picker' },
    ...REACTIONS.map((emoji) => el('button', {
      type: 'button', 'data-testid': 'reaction-option', 'data-emoji': emoji, 'aria-pressed': String(mine.has(emoji)),
      'aria-label': mine.has(emoji) ? `Remove ${emoji}` : `React with ${emoji}`, text: emoji,
      onclick: () => { state.pickerFor = null; react(message, emoji, !mine.has(emoji)); },
    })));
}

// What a conversation list shows of a message: its text or caption, else what it carries.
function previewOf(message) {
  if (message.type === TYPE.system) {
    const notice = noticeOf(message);
    return notice && isPinNotice(notice) ? describeNotice(message) : 'group update';
  }
  return message.content || PREVIEW[message.type] || '';
}

// What a reply quotes of a message (the server's excerpt: its first 100 characters).
function excerptOf(message) {
  const text = message.content || PREVIEW[message.type] || '';
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    const parts = [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)];
    return parts.slice(0, EXCERPT_CHARS).map((p) => p.segment).join('');
  }
  return Array.from(text).slice(0, EXCERPT_CHARS).join('');
}

// Whether a message of someone else's mentions me (by id, or everyone).
function mentionsMe(message) {
  if (!state.me || message.from === String(state.me.id)) return false;
  const mentions = message.mentions || [];
  return mentions.includes(String(state.me.id)) || mentions.includes('all');
}

// The text of a message with its @mentions marked (mentions of me stand out).
function contentWithMentions(message) {
  const text = message.content || '';
  const mentions = message.mentions || [];
  if (mentions.length === 0) return [text];
  const me = String(state.me.id);
  const toMe = mentionsMe(message);
  const tokens = new Map(); // "@name" -> whether it names me
  for (const id of mentions) {
    if (id === 'all') { tokens.set('@all', toMe); continue; }
    for (const name of mentionNames(message.conversation, id)) tokens.set(`@${name}`, toMe && id === me);
  }
  const names = [...tokens.keys()].filter((t) => t.length > 1).sort((a, b) => b.length - a.length);
  if (names.length === 0) return [text];
  // "@Bob" in "@Bobby" is no mention of Bob.
  const pattern = new RegExp(`(${names.map(escapeRegExp).join('|')})(?![\\p{L}\\p{N}_])`, 'gu');
  return text.split(pattern).filter((part) => part !== '').map((part) => (tokens.has(part)
    ? el('span', { class: tokens.get(part) ? 'mention me' : 'mention', 'data-testid': 'mention', text: part })
    : document.createTextNode(part)));
}

// The names a member may be @mentioned by in a group: the group nickname and the display name.
function mentionNames(conversation, userId) {
  const member = (state.members.get(conversation) || []).find((m) => m.user_id === String(userId));
  if (member) return [...new Set([member.name, member.nick_name].filter(Boolean))];
  return [nameOf(userId)];
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Own messages that take an edit: texts and captioned media, not copies, not notices.
function editable(message) {
  return message.type !== TYPE.system && !message.forwarded
    && (message.type === TYPE.text || !!message.content);
}

// Who may pin: in a 1:1 either participant, in a group its owner and admins, in the lobby nobody.
function canPin(conversation) {
  if (conversation.startsWith('u:')) return true;
  if (conversation === LOBBY) return false;
  const me = (state.members.get(conversation) || []).find((m) => m.user_id === String(state.me.id));
  return !!me && (me.role === 'owner' || me.role === 'admin');
}

// ---- Attachments and places in messages ---------------------------------------------------

function humanSize(bytes) {
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function fileUrl(fileId) {
  return `/files/${encodeURIComponent(fileId)}`;
}

// The rendered attachment or place of a message, made once per message (a recall removes the
// message, and with it this).
function mediaOf(message) {
  if (!state.media.has(message.id)) {
    state.media.set(message.id, message.location ? locationView(message.location)
      : message.attachment ? attachmentView(message.type, message.attachment)
        : el('div', { class: 'media missing', text: PREVIEW[message.type] || '[message]' }));
  }
  return state.media.get(message.id);
}

// An image's thumbnail box: the thumbnail's size (longest side 320) scaled to fit, so the list
// does not jump when it loads.
function thumbnailSize(a) {
  if (!a.width || !a.height) return {};
  const scale = Math.min(1, 320 / Math.max(a.width, a.height));
  return { width: String(Math.max(1, Math.round(a.width * scale))), height: String(Math.max(1, Math.round(a.height * scale))) };
}

function attachmentView(type, a) {
  const url = fileUrl(a.file_id);
  const label = `${a.name} (${humanSize(a.size)})`;
  if (type === TYPE.image) {
    return el('div', { class: 'media image', 'data-testid': 'message-attachment' },
      el('a', { href: url, target: '_blank', rel: 'noopener', 'data-testid': 'attachment-open', title: label },
        el('img', { src: a.thumbnail || url, alt: a.name, loading: 'lazy', 'data-testid': 'attachment-image', ...thumbnailSize(a) })));
  }
  if (type === TYPE.voice || type === TYPE.video) {
    // Plays only where the page's Content-Security-Policy has media-src 'self'.
    const player = el(type === TYPE.voice ? 'audio' : 'video', {
      controls: '', preload: 'metadata', src: url, 'data-testid': type === TYPE.voice ? 'attachment-audio' : 'attachment-video',
    });
    const length = a.duration_ms ? ` · ${formatDuration(a.duration_ms)}` : '';
    return el('div', { class: `media ${type === TYPE.voice ? 'voice' : 'video'}`, 'data-testid': 'message-attachment' },
      player, el('a', { class: 'file-meta', href: url, target: '_blank', rel: 'noopener', text: `${label}${length}` }));
  }
  return el('div', { class: 'media file', 'data-testid': 'message-attachment' },
    el('a', { href: url, download: a.name, 'data-testid': 'attachment-download' },
      el('span', { class: 'file-name', text: a.name }),
      el('span', { class: 'file-meta', text: ` ${humanSize(a.size)}` })));
}

function formatDuration(ms) {
  const secs = Math.round(ms / 1000);
  return `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
}

function locationView(place) {
  const lat = Number(place.lat);
  const lon = Number(place.lon);
  const map = new URL('https://www.openstreetmap.org/');
  map.searchParams.set('mlat', String(lat));
  map.searchParams.set('mlon', String(lon));
  map.hash = `map=16/${lat}/${lon}`;
  return el('div', { class: 'media location', 'data-testid': 'message-location' },
    el('a', { href: map.href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'location-link' },
      `${lat.toFixed(5)}, ${lon.toFixed(5)}`),
    place.address ? el('div', { class: 'address', 'data-testid': 'location-address', text: place.address }) : null);
}

// The description a system message (type 10) carries, or null when it is not JSON.
function noticeOf(message) {
  try {
    const notice = JSON.parse(message.content);
    return notice && typeof notice === 'object' ? notice : null;
  } catch {
    return null;
  }
}

// A pin or unpin notice (any conversation, 1:1 included).
function isPinNotice(notice) {
  return notice.action === 'pinned' || notice.action === 'unpinned';
}

function describeNotice(message) {
  const notice = noticeOf(message);
  if (!notice) return message.content;
  if (isPinNotice(notice)) {
    const who = nameOf(notice.by || message.from);
    const target = state.messages.get(message.conversation)?.get(notice.message_id);
    return target ? `${who} ${notice.action} “${excerptOf(target)}”` : `${who} ${notice.action} a message`;
  }
  return `group: ${notice.action}${notice.user_id ? ' ' + nameOf(notice.user_id) : ''}`;
}

async function deleteMessage(message, everyone) {
  const frame = { op_type: 5, content: message.id };
  if (everyone) frame.scope = 'all';
  const reply = await request(frame);
  if (reply.code === 200) removeMessage(message.conversation, message.id, everyone);
  else showNotice(reply.msg || 'Could not delete');
}

async function markRead(conversation, seq) {
  const reply = await request({ op_type: 4, conversation, seq });
  if (reply.code === 200) {
    const item = state.conversations.get(conversation);
    if (item) { item.unread = 0; item.mentions = 0; renderConversations(); }
  }
}

function showNotice(text, seconds) {
  const notice = $('antispam-notice');
  clearInterval(state.noticeTimer);
  notice.hidden = false;
  if (!seconds) { notice.textContent = text; return; }
  let left = seconds;
  const tick = () => {
    notice.textContent = `${text} Try again in ${left} s.`;
    if (left <= 0) { clearInterval(state.noticeTimer); notice.hidden = true; }
    left -= 1;
  };
  tick();
  state.noticeTimer = setInterval(tick, 1000);
}

// Why a send, a forward, an edit or a reaction was refused (`what` says what did not happen),
// or null when it was not.
function refusalOf(reply, what) {
  if (reply.code === 50006) return `Slow down: refused by the ${reply.data ? reply.data.rule : 'rate'} limit.`;
  if ([200, 50004, 50005].includes(reply.code)) return null;
  return reply.code === 0 ? `Not connected; ${what}.` : (reply.msg || 'Refused');
}

// Shows a refusal above the composer (anti-spam's with its countdown); false when there was
// none. What was typed stays in the composer for later.
function showRefusal(reply, what) {
  const refusal = refusalOf(reply, what);
  if (refusal) showNotice(refusal, reply.code === 50006 && reply.data ? reply.data.retry_after : 0);
  return refusal !== null;
}

$('composer').addEventListener('keydown', (event) => {
  if (state.mention && mentionKey(event)) return;
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('composer-form').requestSubmit();
  } else if (event.key === 'ArrowUp' && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey
    && $('composer').value === '' && !state.editing && !state.attachment) {
    // As in Telegram and Slack: ↑ in an empty composer edits my last text message.
    const last = lastOwnText(state.current);
    if (last) { event.preventDefault(); startEdit(last); }
  } else if (event.key === 'Escape') {
    if (state.editing) { event.preventDefault(); cancelEdit(); } else if (state.replyTo) { event.preventDefault(); cancelReply(); }
  }
});

$('composer').addEventListener('input', () => {
  updateMentions();
  const now = Date.now();
  if (!state.current || state.editing || now - state.lastTypingSent < state.typingEveryMs + 250 || state.current === LOBBY) return;
  state.lastTypingSent = now;
  request({ op_type: 8, conversation: state.current });
});
$('composer').addEventListener('click', () => updateMentions());
$('composer').addEventListener('blur', () => closeMentions());

$('composer-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (state.editing) { await submitEdit(); return; }
  const id = state.current;
  const text = $('composer').value;
  const staged = state.attachment;
  if (!id || (!text.trim() && !staged) || (staged && staged.sending)) return;
  closeMentions();
  const item = state.conversations.get(id);
  const clientMsgId = `m-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  const frame = item.kind === 'group'
    ? { op_type: 6, to: id.slice(2), type: TYPE.text, content: text, client_msg_id: clientMsgId }
    : { op_type: 1, to: peerOf(id), type: TYPE.text, content: text, client_msg_id: clientMsgId };
  const answered = state.replyTo && state.replyTo.conversation === id ? state.replyTo : null;
  if (answered) frame.reply_to = answered.id;
  if (item.kind === 'group' && id !== LOBBY) {
    const mentions = mentionsIn(text, id);
    if (mentions.length > 0) frame.mentions = mentions;
  }
  if (staged) {
    // The text becomes the caption; Send during the upload sends once it is done.
    staged.sending = true;
    const file = await staged.done;
    staged.sending = false;
    if (!file || state.attachment !== staged) return;
    frame.type = typeOf(file.mime);
    frame.attachment = { file_id: file.id };
    if (staged.durationMs) frame.attachment.duration_ms = staged.durationMs;
    if (!text.trim()) delete frame.content;
  }
  const reply = await request(frame);
  if (showRefusal(reply, 'your message was not sent')) return;
  $('composer').value = '';
  $('antispam-notice').hidden = true;
  if (staged && state.attachment === staged) {
    state.attachment = null; // sent: the upload now belongs to the message
    renderAttachment();
  }
  if (answered && state.replyTo === answered) cancelReply();
  const message = reply.data;
  state.delivery.set(message.id, reply.code === 50004 ? 'delivered' : 'sent');
  receive(message, true);
});

// ---- Message actions: reply, edit, reactions, forward, pins, @mentions ---------------------

function startReply(message) {
  if (state.editing) cancelEdit();
  state.replyTo = message;
  state.actionsFor = null;
  renderComposerBars();
  renderMessages(false);
  $('composer').focus();
}

function cancelReply() {
  state.replyTo = null;
  renderComposerBars();
}

// Edits happen in the composer, as in Telegram: it takes the message's text, and gives back
// what was typed before when the edit is done or cancelled.
function startEdit(message) {
  if (!editable(message)) return;
  state.replyTo = null;
  if (!state.editing) state.editing = { message, draft: $('composer').value };
  else state.editing.message = message;
  state.actionsFor = null;
  closeMentions();
  $('composer').value = message.content || '';
  renderComposerBars();
  renderMessages(false);
  const composer = $('composer');
  composer.focus();
  composer.setSelectionRange(composer.value.length, composer.value.length);
}

function cancelEdit() {
  const editing = state.editing;
  state.editing = null;
  if (editing) $('composer').value = editing.draft;
  renderComposerBars();
}

async function submitEdit() {
  const { message } = state.editing;
  const text = $('composer').value;
  if (!text.trim()) {
    showNotice('An edit cannot be empty: delete or recall the message instead.');
    return;
  }
  const reply = await request({ op_type: 9, message_id: message.id, content: text });
  if (showRefusal(reply, 'the message was not edited')) return;
  $('antispam-notice').hidden = true;
  if (state.editing && state.editing.message.id === message.id) cancelEdit();
  applyEdit(reply.data, true);
}

// My newest text message in a conversation (what ↑ edits).
function lastOwnText(conversation) {
  const known = state.messages.get(conversation);
  if (!known || !state.me) return null;
  let last = null;
  for (const m of known.values()) {
    if (m.from === String(state.me.id) && m.type === TYPE.text && editable(m) && (!last || m.seq > last.seq)) last = m;
  }
  return last;
}

function renderComposerBars() {
  const reply = state.replyTo;
  $('reply-bar').hidden = !reply;
  if (reply) {
    $('reply-bar-author').textContent = nameOf(reply.from);
    $('reply-bar-excerpt').textContent = excerptOf(reply);
  }
  const editing = state.editing;
  $('edit-bar').hidden = !editing;
  if (editing) $('edit-bar-excerpt').textContent = excerptOf(editing.message);
  $('attach').disabled = !!editing;
  $('composer').placeholder = editing ? 'Edit the message' : 'Message';
}

$('reply-cancel').addEventListener('click', () => { cancelReply(); $('composer').focus(); });
$('edit-cancel').addEventListener('click', () => { cancelEdit(); $('composer').focus(); });

// A changed message: from my op 9 answer or a resume (`own`: its reactions are counted for me),
// or from `event: edited` (whose reactions carry no `me`: the ones known here are kept, reaction
// events keep them current).
function applyEdit(updated, own) {
  const conversation = updated.conversation;
  const known = state.messages.get(conversation);
  const old = known && known.get(updated.id);
  const merged = old ? { ...old, ...updated, reactions: own ? updated.reactions : old.reactions } : updated;
  if (old) known.set(updated.id, merged);
  if (known) {
    // Replies quote the text as it is now.
    for (const [id, m] of known) {
      if (m.reply_to && m.reply_to.id === updated.id && !m.reply_to.recalled) {
        known.set(id, { ...m, reply_to: { ...m.reply_to, excerpt: excerptOf(merged) } });
      }
    }
  }
  for (const p of state.pins.get(conversation) || []) {
    if (p.message.id === updated.id) p.message = { ...p.message, ...updated, reactions: p.message.reactions };
  }
  const item = state.conversations.get(conversation);
  if (item && item.last && item.last.id === updated.id) {
    item.last = merged;
    renderConversations();
  }
  if (state.replyTo && state.replyTo.id === updated.id) state.replyTo = merged;
  if (conversation === state.current) {
    renderMessages(false);
    renderPinned();
    renderComposerBars();
  }
}

async function react(message, emoji, add) {
  state.pickerFor = null;
  const reply = await request({ op_type: 10, message_id: message.id, emoji, action: add ? 'add' : 'remove' });
  if (reply.code !== 200) {
    showRefusal(reply, 'the reaction was not sent');
    renderMessages(false);
    return;
  }
  const known = state.messages.get(message.conversation);
  const current = known && known.get(message.id);
  if (current) known.set(message.id, { ...current, reactions: reply.data.reactions || [] });
  if (message.conversation === state.current) renderMessages(false);
}

// `event: reaction`: someone (maybe me, on another device) added or took back one.
function applyReaction(data) {
  const known = state.messages.get(data.conversation);
  const message = known && known.get(data.message_id);
  if (!message) return;
  const mine = data.user_id === String(state.me.id);
  const reactions = (message.reactions || []).map((r) => ({ ...r }));
  let entry = reactions.find((r) => r.emoji === data.emoji);
  if (data.action === 'add') {
    if (!entry) { entry = { emoji: data.emoji, count: 0, me: false }; reactions.push(entry); }
    entry.count += 1;
    if (mine) entry.me = true;
  } else if (entry) {
    entry.count -= 1;
    if (mine) entry.me = false;
  }
  known.set(message.id, { ...message, reactions: reactions.filter((r) => r.count > 0) });
  if (data.conversation === state.current) renderMessages(false);
}

function togglePicker(id) {
  state.pickerFor = state.pickerFor === id ? null : id;
  renderMessages(false);
  if (state.pickerFor) {
    const first = $('messages').querySelector(`[data-message-id="${CSS.escape(id)}"] [data-testid="reaction-option"]`);
    if (first) first.focus({ preventScroll: true });
  }
}

// A click outside the open picker closes it; a tap on a bubble (not on one of its controls)
// shows that message's actions, for screens without hover.
document.addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  let changed = false;
  if (state.pickerFor && !target.closest('[data-testid="reaction-picker"], [data-testid="message-react"]')) {
    state.pickerFor = null;
    changed = true;
  }
  const bubble = target.closest('#messages [data-message-id]');
  if (bubble && !target.closest('button, a, audio, video, input, textarea')) {
    const selected = window.getSelection && !window.getSelection().isCollapsed;
    const id = bubble.getAttribute('data-message-id');
    if (!selected) { state.actionsFor = state.actionsFor === id ? null : id; changed = true; }
  } else if (state.actionsFor && !bubble) {
    state.actionsFor = null;
    changed = true;
  }
  if (changed && state.current) renderMessages(false);
});

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape' || (!state.pickerFor && !state.actionsFor)) return;
  const id = state.pickerFor || state.actionsFor;
  state.pickerFor = null;
  state.actionsFor = null;
  renderMessages(false);
  const bubble = $('messages').querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (bubble) bubble.focus({ preventScroll: true });
});

// ---- Pins ---------------------------------------------------------------------------------

async function loadPins(conversation) {
  const result = await api('GET', `/conversations/${encodeURIComponent(conversation)}/pins`);
  if (!result.ok) return;
  state.pins.set(conversation, result.data.pins || []);
  if (conversation === state.current) {
    state.pinIndex = Math.min(state.pinIndex, Math.max(0, state.pins.get(conversation).length - 1));
    renderPinned();
    renderMessages(false);
  }
}

// `event: pinned` / `unpinned`: the open chat asks for its pins again, others when opened.
function pinsChanged(conversation) {
  if (conversation === state.current) loadPins(conversation);
  else state.pins.delete(conversation);
}

// The bar at the top of a chat: one pin at a time, the newest first; a click shows that
// message in the chat and moves the bar on to the next older pin (as in Telegram).
function renderPinned() {
  const pins = (state.current && state.pins.get(state.current)) || [];
  const bar = $('pinned-bar');
  bar.hidden = pins.length === 0;
  if (pins.length === 0) return;
  const index = state.pinIndex % pins.length;
  const pinned = pins[index];
  const message = state.messages.get(state.current)?.get(pinned.message.id) || pinned.message;
  $('pinned-label').textContent = pins.length > 1 ? `Pinned message ${index + 1} of ${pins.length}` : 'Pinned message';
  $('pinned-text').textContent = excerptOf(message);
  bar.dataset.messageId = pinned.message.id;
  $('pinned-open').setAttribute('aria-label', `Pinned message: ${excerptOf(message)}. Show it in the chat`);
  $('pinned-unpin').hidden = !canPin(state.current);
}

$('pinned-open').addEventListener('click', () => {
  const pins = state.pins.get(state.current) || [];
  if (pins.length === 0) return;
  const pinned = pins[state.pinIndex % pins.length];
  state.pinIndex = (state.pinIndex + 1) % pins.length;
  renderPinned();
  jumpTo(state.current, pinned.message.id);
});

$('pinned-unpin').addEventListener('click', () => {
  const id = $('pinned-bar').dataset.messageId;
  if (id && state.current) unpin(state.current, id);
});

async function pin(message) {
  const conversation = message.conversation;
  const result = await api('POST', `/conversations/${encodeURIComponent(conversation)}/pins`, { message_id: message.id });
  if (!result.ok) { showNotice(result.data.message || 'Could not pin the message'); return; }
  const pins = (state.pins.get(conversation) || []).filter((p) => p.message.id !== message.id);
  state.pins.set(conversation, [result.data.pin, ...pins]);
  if (conversation === state.current) {
    state.pinIndex = 0;
    renderPinned();
    renderMessages(false);
  }
}

async function unpin(conversation, id) {
  const result = await api('DELETE', `/conversations/${encodeURIComponent(conversation)}/pins/${encodeURIComponent(id)}`);
  if (!result.ok && result.status !== 404) { showNotice(result.data.message || 'Could not unpin the message'); return; }
  state.pins.set(conversation, (state.pins.get(conversation) || []).filter((p) => p.message.id !== id));
  if (conversation === state.current) {
    renderPinned();
    renderMessages(false);
  }
}

// ---- Group members (for @mentions and who may pin) ----------------------------------------

async function loadMembers(conversation) {
  const result = await api('GET', `/groups/${encodeURIComponent(conversation.slice(2))}/members?limit=100`);
  if (!result.ok) return null;
  const members = result.data.members.map((m) => ({
    user_id: String(m.user_id),
    name: m.nickname || m.nick_name || m.user_name || `#${m.user_id}`,
    nick_name: m.nick_name,
    user_name: m.user_name,
    role: m.role,
  }));
  state.members.set(conversation, members);
  if (conversation === state.current) {
    renderMessages(false);
    renderPinned();
  }
  return result.data.members;
}

// `event: group`: the list may change, and so may the members and their roles.
function groupChanged(data) {
  loadConversations();
  const conversation = data && data.group_id ? `g:${data.group_id}` : null;
  if (!conversation) return;
  state.members.delete(conversation);
  if (conversation === state.current) loadMembers(conversation);
}

// ---- @mentions ----------------------------------------------------------------------------

// Folded for matching: case and accents do not matter.
function fold(text) {
  return text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

// The ids an outgoing group message mentions: the members whose "@name" it holds, or "all"
// when an owner or admin wrote "@all".
function mentionsIn(text, conversation) {
  const members = state.members.get(conversation) || [];
  const me = members.find((m) => m.user_id === String(state.me.id));
  const ends = (at, name) => {
    const after = text.slice(at + name.length + 1, at + name.length + 2);
    return after === '' || !/[\p{L}\p{N}_]/u.test(after);
  };
  const holds = (name) => {
    for (let at = text.indexOf(`@${name}`); at !== -1; at = text.indexOf(`@${name}`, at + 1)) {
      if ((at === 0 || /\s/.test(text[at - 1])) && ends(at, name)) return true;
    }
    return false;
  };
  if (me && (me.role === 'owner' || me.role === 'admin') && holds('all')) return ['all'];
  return members
    .filter((m) => m.user_id !== String(state.me.id) && mentionNames(conversation, m.user_id).some(holds))
    .map((m) => m.user_id);
}

// Opens, narrows or closes the completion for the "@word" just before the caret.
function updateMentions() {
  const composer = $('composer');
  const id = state.current;
  const item = id && state.conversations.get(id);
  if (!item || item.kind !== 'group' || id === LOBBY || state.editing) { closeMentions(); return; }
  const before = composer.value.slice(0, composer.selectionStart);
  const match = /(^|\s)@([^@\n]{0,32})$/u.exec(before);
  if (!match) { closeMentions(); return; }
  const members = state.members.get(id);
  if (!members) { loadMembers(id).then(() => { if (document.activeElement === composer) updateMentions(); }); return; }
  const query = fold(match[2]);
  const me = members.find((m) => m.user_id === String(state.me.id));
  const options = members
    .filter((m) => m.user_id !== String(state.me.id))
    .filter((m) => [m.name, m.nick_name, m.user_name].some((n) => n && fold(n).startsWith(query)));
  if (me && (me.role === 'owner' || me.role === 'admin') && 'all'.startsWith(query)) {
    options.push({ user_id: 'all', name: 'all', user_name: null, everyone: true });
  }
  if (options.length === 0) { closeMentions(); return; }
  const previous = state.mention;
  const kept = previous ? options.findIndex((o) => o.user_id === previous.options[previous.active]?.user_id) : -1;
  state.mention = {
    start: before.length - match[2].length - 1,
    options: options.slice(0, MENTION_SUGGESTIONS),
    active: kept >= 0 && kept < MENTION_SUGGESTIONS ? kept : 0,
  };
  renderMentions();
}

function closeMentions() {
  state.mention = null;
  renderMentions();
}

function renderMentions() {
  const list = $('mention-list');
  const mention = state.mention;
  list.hidden = !mention;
  $('composer').setAttribute('aria-expanded', String(!!mention));
  if (!mention) { list.replaceChildren(); $('composer').removeAttribute('aria-activedescendant'); return; }
  list.replaceChildren(...mention.options.map((option, i) => el('li', {
    id: `mention-option-${i}`, role: 'option', 'aria-selected': String(i === mention.active),
    class: i === mention.active ? 'active' : '', 'data-testid': 'mention-option', 'data-user-id': option.user_id,
    onmousedown: (event) => { event.preventDefault(); pickMention(i); },
  }, el('span', { class: 'title', text: `@${option.name}` }),
  el('span', { class: 'meta', text: option.everyone ? 'everyone in the group' : (option.user_name ? `@${option.user_name}` : '') }))));
  $('composer').setAttribute('aria-activedescendant', `mention-option-${mention.active}`);
}

// The completion's keys: ↑/↓ choose, Enter or Tab take, Esc closes. True when handled.
function mentionKey(event) {
  const mention = state.mention;
  const n = mention.options.length;
  if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    mention.active = (mention.active + (event.key === 'ArrowDown' ? 1 : n - 1)) % n;
    renderMentions();
  } else if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
    pickMention(mention.active);
  } else if (event.key === 'Escape') {
    closeMentions();
  } else {
    return false;
  }
  event.preventDefault();
  return true;
}

function pickMention(index) {
  const mention = state.mention;
  const option = mention && mention.options[index];
  if (!option) return;
  const composer = $('composer');
  const caret = composer.selectionStart;
  const inserted = `@${option.name} `;
  composer.value = composer.value.slice(0, mention.start) + inserted + composer.value.slice(caret);
  const at = mention.start + inserted.length;
  composer.setSelectionRange(at, at);
  closeMentions();
  composer.focus();
}

// ---- Forwarding ---------------------------------------------------------------------------

function openForward(message) {
  state.forwarding = message;
  state.actionsFor = null;
  $('forward-excerpt').textContent = excerptOf(message);
  $('forward-filter').value = '';
  $('forward-error').textContent = '';
  renderForwardList();
  $('forward').showModal();
  $('forward-filter').focus();
}

function renderForwardList() {
  const query = fold($('forward-filter').value.trim());
  const items = [...state.conversations.values()]
    .sort((a, b) => (b.at - a.at) || a.conversation.localeCompare(b.conversation))
    .filter((item) => !query || fold(item.title).includes(query));
  $('forward-list').replaceChildren(...items.map((item) => el('li', {},
    el('button', {
      type: 'button', class: 'forward-target', 'data-testid': 'forward-target', 'data-conversation': item.conversation,
      text: item.title, onclick: () => forwardTo(item.conversation),
    }))));
}

$('forward-filter').addEventListener('input', renderForwardList);
$('forward-cancel').addEventListener('click', () => $('forward').close());
$('forward').addEventListener('close', () => { state.forwarding = null; });

async function forwardTo(conversation) {
  const message = state.forwarding;
  if (!message) return;
  const item = state.conversations.get(conversation);
  const frame = item.kind === 'group'
    ? { op_type: 6, to: conversation.slice(2), forward_of: message.id }
    : { op_type: 1, to: peerOf(conversation), forward_of: message.id };
  frame.client_msg_id = `f-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  const reply = await request(frame);
  const refusal = refusalOf(reply, 'the message was not forwarded');
  if (refusal) { $('forward-error').textContent = refusal; return; }
  $('forward').close();
  state.delivery.set(reply.data.id, reply.code === 50004 ? 'delivered' : 'sent');
  receive(reply.data, true);
  // As in Telegram: the chat it went to opens.
  await openConversation(conversation);
}

// ---- Showing one message (from search, a quote, a pin) ------------------------------------

// Opens the conversation, loads older pages until the message is there, scrolls to it and
// marks it for a moment.
async function jumpTo(conversation, id) {
  if (state.current !== conversation) await openConversation(conversation);
  for (let page = 0; page < JUMP_PAGES && state.current === conversation; page += 1) {
    const known = state.messages.get(conversation);
    if (!known || known.has(id) || state.hasMore.get(conversation) === false) break;
    if (state.loadingOlder) { await new Promise((r) => setTimeout(r, 100)); continue; }
    if (await loadOlder(conversation) === 0 && state.hasMore.get(conversation) !== false) break;
  }
  if (state.current !== conversation) return;
  if (!state.messages.get(conversation)?.has(id)) {
    renderMessages(false);
    showNotice('That message is no longer in this chat.');
    return;
  }
  clearTimeout(state.highlightTimer);
  state.highlighted = id;
  renderMessages(false);
  const node = $('messages').querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (node) {
    node.scrollIntoView({ block: 'center' });
    node.focus({ preventScroll: true });
  }
  state.highlightTimer = setTimeout(() => {
    state.highlighted = null;
    if (state.current === conversation) renderMessages(false);
  }, 2500);
}

// ---- Message search -----------------------------------------------------------------------

$('message-search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  searchMessages(false);
});
$('message-search-more').addEventListener('click', () => searchMessages(true));
$('message-search-clear').addEventListener('click', () => {
  $('message-search').value = '';
  clearMessageSearch();
  $('message-search').focus();
});

function clearMessageSearch() {
  state.search = null;
  $('message-results').hidden = true;
  $('message-results-list').replaceChildren();
  $('message-search-error').textContent = '';
}

// One page of hits: a new search, or (`more`) the next page of the last one.
async function searchMessages(more) {
  const previous = state.search;
  const q = more && previous ? previous.q : $('message-search').value.trim();
  if (!q) { clearMessageSearch(); return; }
  const conversation = more && previous ? previous.conversation
    : ($('message-search-scope').checked && state.current ? state.current : null);
  const params = new URLSearchParams({ q, limit: String(SEARCH_PAGE) });
  if (conversation) params.set('conversation', conversation);
  if (more && previous && previous.next) params.set('before', previous.next);
  const result = await api('GET', `/search/messages?${params}`);
  if (!result.ok) {
    clearMessageSearch();
    $('message-search-error').textContent = result.status === 429
      ? `Too many searches: try again in ${result.data.retry_after || 'a few'} s.`
      : (result.data.message || 'Search failed');
    return;
  }
  $('message-search-error').textContent = '';
  const hits = (more && previous ? previous.hits : []).concat(result.data.results);
  state.search = { q, conversation, hits, next: result.data.has_more ? result.data.next_before : null };
  renderMessageSearch();
}

function renderMessageSearch() {
  const search = state.search;
  $('message-results').hidden = !search;
  if (!search) return;
  const n = search.hits.length;
  $('message-search-count').textContent = n === 0 ? `No messages match “${search.q}”.`
    : `${n}${search.next ? '+' : ''} message${n === 1 ? '' : 's'} found`;
  $('message-search-more').hidden = !search.next;
  $('message-results-list').replaceChildren(...search.hits.map(({ conversation, message }) => {
    const item = state.conversations.get(conversation);
    const where = item ? item.title : conversation;
    const who = message.from === String(state.me.id) ? 'You' : (message.nickname || nameOf(message.from));
    return el('li', {
      'data-testid': 'message-search-result', 'data-conversation': conversation, 'data-message-id': message.id,
    }, el('button', {
      type: 'button', class: 'result', onclick: () => openSearchHit(conversation, message),
      'aria-label': `${who} in ${where}: ${previewOf(message)}`,
    },
    el('span', { class: 'result-head' },
      el('span', { class: 'title', 'data-testid': 'message-search-where', text: where }),
      el('span', { class: 'meta', text: new Date(message.created_at).toLocaleString() })),
    el('span', { class: 'result-text', 'data-testid': 'message-search-text', text: `${who}: ${previewOf(message)}` })));
  }));
}

async function openSearchHit(conversation, message) {
  if (!state.conversations.has(conversation)) {
    upsertConversation(conversation, {});
    await loadConversations();
  }
  await jumpTo(conversation, message.id);
}

// ---- Uploading an attachment --------------------------------------------------------------

// The images the server measures and thumbnails, the only ones it takes as type 2.
const SHOWN_IMAGES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

// The message type for an upload of (server-sniffed) type `mime`; other images go as files.
function typeOf(mime) {
  if (SHOWN_IMAGES.includes(mime)) return TYPE.image;
  if (mime.startsWith('image/')) return TYPE.file;
  if (mime.startsWith('audio/')) return TYPE.voice;
  if (mime.startsWith('video/')) return TYPE.video;
  return TYPE.file;
}

// POST /files with XMLHttpRequest, whose upload.onprogress fetch() lacks. Resolves to
// {status, data}: status 0 when the connection broke off, -1 when aborted.
function uploadFile(file, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve) => {
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      resolve({ status: xhr.status, data: data || {} });
    });
    xhr.addEventListener('error', () => resolve({ status: 0, data: {} }));
    xhr.addEventListener('abort', () => resolve({ status: -1, data: {} }));
  });
  const form = new FormData();
  form.append('file', file, file.name || 'file');
  xhr.open('POST', '/files');
  xhr.send(form);
  return { done, abort: () => xhr.abort() };
}

// A byte count named in a server message ("... larger than 20971520 bytes"), made readable.
function bytesIn(message) {
  const match = /(\d+) bytes/.exec(message || '');
  return match ? humanSize(Number(match[1])) : null;
}

function uploadErrorText(result, file) {
  const { status, data } = result;
  const name = file.name || 'The file';
  switch (data.code) {
    case 'payload_too_large': {
      const limit = bytesIn(data.message);
      return `${name} (${humanSize(file.size)}) is too large${limit ? `: files may be up to ${limit}` : ''}.`;
    }
    case 'quota_exceeded': {
      const quota = bytesIn(data.message);
      return `${name} does not fit in your storage${quota ? ` (${quota} in all)` : ''}: delete some of your files first.`;
    }
    case 'rate_limited':
      return `Too many uploads in a short time: try again in ${data.retry_after || 'a few'} s.`;
    case 'invalid_image':
      return `${name} looks like an image but cannot be read: ${data.message}`;
    default:
      break;
  }
  if (status === 0) return `The upload of ${name} broke off (connection lost, or the file is too large).`;
  if (status === 401) return 'Your session has ended: log in again to send files.';
  return `${name} was not uploaded: ${data.message || `HTTP ${status}`}`;
}

function showUploadError(text) {
  $('upload-error').textContent = text;
  $('upload-error').hidden = !text;
}

// The play length of an uploaded voice or video file, read by the browser from the server's
// copy (same origin; a blob: URL of the local file would need its own CSP source); null when
// it cannot tell.
function mediaDuration(file) {
  const kind = typeOf(file.mime);
  if (kind !== TYPE.voice && kind !== TYPE.video) return Promise.resolve(null);
  return new Promise((resolve) => {
    const media = document.createElement(kind === TYPE.voice ? 'audio' : 'video');
    const finish = (ms) => {
      clearTimeout(timer);
      media.removeAttribute('src');
      resolve(Number.isFinite(ms) && ms >= 1 && ms <= MAX_DURATION_MS ? ms : null);
    };
    const timer = setTimeout(() => finish(null), 3000);
    media.preload = 'metadata';
    media.addEventListener('loadedmetadata', () => finish(Math.round(media.duration * 1000)));
    media.addEventListener('error', () => finish(null));
    media.src = fileUrl(file.id);
  });
}

// Stages `file` in the composer and starts uploading it; Send sends it (with the text as its
// caption) once it is up. One attachment per message: a new one replaces the old.
function attach(file) {
  if (!file || !state.current) return;
  discardAttachment();
  showUploadError('');
  const staged = { file, progress: 0, uploaded: null, sending: false };
  state.attachment = staged;
  const upload = uploadFile(file, (fraction) => {
    staged.progress = fraction;
    if (state.attachment === staged) renderAttachment();
  });
  staged.abort = upload.abort;
  staged.done = upload.done.then(async (result) => {
    if (state.attachment !== staged) return null; // removed meanwhile
    if (result.status === 201 && result.data.file) {
      staged.durationMs = await mediaDuration(result.data.file);
      staged.uploaded = result.data.file;
    } else {
      state.attachment = null;
      showUploadError(uploadErrorText(result, file));
    }
    renderAttachment();
    return staged.uploaded;
  });
  renderAttachment();
  $('composer').focus();
}

// Drops the staged attachment: an upload in flight is aborted, a finished one deleted (no
// message carries it).
function discardAttachment() {
  const staged = state.attachment;
  state.attachment = null;
  if (staged) {
    if (staged.uploaded) api('DELETE', fileUrl(staged.uploaded.id));
    else staged.abort();
  }
  renderAttachment();
}

function renderAttachment() {
  const staged = state.attachment;
  $('upload').hidden = !staged;
  if (!staged) return;
  const ready = !!staged.uploaded;
  $('upload').dataset.state = ready ? 'ready' : 'uploading';
  $('upload-name').textContent = `${staged.file.name || 'file'} (${humanSize(staged.file.size)})`;
  $('upload-progress').value = ready ? 1 : staged.progress;
  $('upload-state').textContent = ready ? 'ready to send' : `uploading ${Math.round(staged.progress * 100)}%`;
}

$('attach').addEventListener('click', () => $('attach-input').click());
$('attach-input').addEventListener('change', (event) => {
  const [file] = event.target.files;
  event.target.value = ''; // choosing the same file again fires change again
  attach(file);
});
$('upload-cancel').addEventListener('click', () => discardAttachment());

// Pasting an image (a screenshot, say) into the composer attaches it; pasted text stays text.
$('composer').addEventListener('paste', (event) => {
  const items = event.clipboardData ? [...event.clipboardData.items] : [];
  const image = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
  const file = image && image.getAsFile();
  if (!file) return;
  event.preventDefault();
  attach(file);
});

// A file dropped outside the chat would make the browser open it in place of the page.
for (const kind of ['dragover', 'drop']) {
  window.addEventListener(kind, (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes('Files')) event.preventDefault();
  });
}

// A file dropped anywhere on the open chat is attached.
$('chat').addEventListener('dragover', (event) => {
  if (!event.dataTransfer || ![...event.dataTransfer.types].includes('Files')) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'copy';
  $('chat').classList.add('dropping');
});
$('chat').addEventListener('dragleave', (event) => {
  if (!$('chat').contains(event.relatedTarget)) $('chat').classList.remove('dropping');
});
$('chat').addEventListener('drop', (event) => {
  $('chat').classList.remove('dropping');
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (!file) return;
  event.preventDefault();
  attach(file);
});

$('show-members').addEventListener('click', async () => {
  const list = $('members');
  if (!list.hidden) { list.hidden = true; return; }
  const members = await loadMembers(state.current);
  if (!members) return;
  list.replaceChildren(...members.map((m) => el('li', { 'data-testid': 'member', 'data-user-id': m.user_id },
    el('span', { class: 'title', text: m.nickname || m.nick_name || m.user_name }),
    el('span', { class: 'meta', text: m.role }))));
  list.hidden = false;
});

$('back').addEventListener('click', () => {
  state.current = null;
  state.replyTo = null;
  if (state.editing) cancelEdit();
  closeMentions();
  renderComposerBars();
  $('message-search-scope-label').hidden = true;
  $('message-search-scope').checked = false;
  $('chat').hidden = true;
  $('empty').hidden = false;
  document.querySelector('.layout').classList.remove('chatting');
  renderConversations();
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state.current) {
    const known = state.messages.get(state.current);
    const newest = known ? [...known.values()].reduce((max, m) => Math.max(max, m.seq), 0) : 0;
    if (newest > 0) markRead(state.current, newest);
  }
});

// For tests: drop the socket the way a network failure would.
window.__chat = {
  dropSocket() { if (state.ws) state.ws.close(4000, 'dropped'); },
};

// A session cookie from an earlier visit logs straight in.
(async () => {
  const me = await api('GET', '/user/me');
  if (me.ok) await enter(me.data.user); else showAuth();
})();
