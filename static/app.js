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
};

// The display name of a user: known at once, or fetched once and shown on the next render.
function nameOf(userId) {
  const id = String(userId);
  if (state.me && id === String(state.me.id)) return state.me.nick_name;
  const known = state.names.get(id);
  if (typeof known === 'string') return known;
  if (known === undefined) {
    state.names.set(id, null);
    api('GET', `/users/${encodeURIComponent(id)}`).then((result) => {
      if (!result.ok) return;
      state.names.set(id, result.data.nick_name);
      if (state.current) renderMessages(false);
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
  const response = await fetch(path, options);
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
  state.current = null;
  discardAttachment();
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
    conversation: id, kind: id.startsWith('g:') ? 'group' : 'user', title: id, last: null, unread: 0, at: 0,
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
    const preview = item.last ? previewOf(item.last) : '';
    return el('li', {
      'data-testid': 'conversation-item',
      'data-conversation': item.conversation,
      class: item.conversation === state.current ? 'active' : '',
      onclick: () => openConversation(item.conversation),
    },
    el('span', { class: 'title', 'data-testid': 'conversation-title', text: item.title }),
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

async function resume() {
  let since = Object.fromEntries(state.lastSeen);
  for (let round = 0; round < 20; round += 1) {
    const reply = await request({ op_type: 7, since });
    if (reply.code !== 200) return;
    for (const message of reply.data.messages) receive(message, false);
    since = reply.data.since;
    if (!reply.data.has_more) break;
  }
  await loadConversations();
}

function onEvent(kind, data) {
  switch (kind) {
    case 'message': receive(data, true); break;
    case 'read': onRead(data); break;
    case 'deleted': removeMessage(data.conversation, data.id); break;
    case 'typing': showTyping(data); break;
    case 'friend_request': case 'friend': loadRequests(); loadFriends(); break;
    case 'group': loadConversations(); break;
    default: break;
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
    else item.unread += 1;
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
    if (item) { item.unread = 0; renderConversations(); }
    return;
  }
  if (data.seq > (state.peerRead.get(data.conversation) || 0)) state.peerRead.set(data.conversation, data.seq);
  if (data.conversation === state.current) renderMessages(false);
}

function removeMessage(conversation, id) {
  const known = state.messages.get(conversation);
  state.media.delete(id);
  if (known && known.delete(id) && conversation === state.current) renderMessages(false);
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
  state.current = id;
  hideTyping();
  $('antispam-notice').hidden = true;
  $('members').hidden = true;
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
  renderMessages(true);
  const newest = [...state.messages.get(id).values()].reduce((max, m) => Math.max(max, m.seq), 0);
  item.unread = 0;
  renderConversations();
  if (newest > 0) markRead(id, newest);
  $('composer').focus();
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
  const known = state.messages.get(state.current) || new Map();
  const ordered = [...known.values()].sort((a, b) => a.seq - b.seq);
  box.replaceChildren(...ordered.map((message) => {
    const mine = message.from === String(state.me.id);
    if (message.type === 10) {
      return el('li', { class: 'system', 'data-testid': 'message', 'data-message-id': message.id, 'data-seq': String(message.seq), 'data-mine': 'false' },
        el('span', { 'data-testid': 'message-content', text: describeNotice(message.content) }));
    }
    const meta = el('span', { class: 'meta' },
      el('span', { text: new Date(message.created_at).toLocaleTimeString() }),
      mine ? el('span', { 'data-testid': 'message-status', text: statusOf(message) }) : null,
      el('button', { type: 'button', 'data-testid': 'message-delete', text: 'Delete', onclick: () => deleteMessage(message, false) }),
      mine ? el('button', { type: 'button', 'data-testid': 'message-recall', text: 'Recall', onclick: () => deleteMessage(message, true) }) : null);
    const sender = !mine && message.conversation.startsWith('g:')
      ? el('span', { class: 'meta', text: message.nickname || nameOf(message.from) }) : null;
    const body = message.type === TYPE.text ? null : mediaOf(message);
    // Text, or the caption under the media (absent when there is none).
    const content = body && !message.content ? null
      : el('div', { class: 'content', 'data-testid': 'message-content', text: message.content });
    return el('li', {
      class: mine ? 'mine' : '', 'data-testid': 'message', 'data-message-id': message.id,
      'data-seq': String(message.seq), 'data-mine': String(mine), 'data-type': String(message.type),
    }, sender, body, content, meta);
  }));
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

// What a conversation list shows of a message: its text or caption, else what it carries.
function previewOf(message) {
  if (message.type === TYPE.system) return 'group update';
  return message.content || PREVIEW[message.type] || '';
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

function describeNotice(content) {
  try {
    const notice = JSON.parse(content);
    return `group: ${notice.action}${notice.user_id ? ' ' + nameOf(notice.user_id) : ''}`;
  } catch {
    return content;
  }
}

async function deleteMessage(message, everyone) {
  const frame = { op_type: 5, content: message.id };
  if (everyone) frame.scope = 'all';
  const reply = await request(frame);
  if (reply.code === 200) removeMessage(message.conversation, message.id);
  else showNotice(reply.msg || 'Could not delete');
}

async function markRead(conversation, seq) {
  const reply = await request({ op_type: 4, conversation, seq });
  if (reply.code === 200) {
    const item = state.conversations.get(conversation);
    if (item) { item.unread = 0; renderConversations(); }
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

$('composer').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('composer-form').requestSubmit();
  }
});

$('composer').addEventListener('input', () => {
  const now = Date.now();
  if (!state.current || now - state.lastTypingSent < state.typingEveryMs + 250 || state.current === LOBBY) return;
  state.lastTypingSent = now;
  request({ op_type: 8, conversation: state.current });
});

$('composer-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const id = state.current;
  const text = $('composer').value;
  const staged = state.attachment;
  if (!id || (!text.trim() && !staged) || (staged && staged.sending)) return;
  const item = state.conversations.get(id);
  const clientMsgId = `m-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  const frame = item.kind === 'group'
    ? { op_type: 6, to: id.slice(2), type: TYPE.text, content: text, client_msg_id: clientMsgId }
    : { op_type: 1, to: peerOf(id), type: TYPE.text, content: text, client_msg_id: clientMsgId };
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
  if (reply.code === 50006) {
    // Refused by anti-spam: the text (and the attachment) stay in the composer for later.
    const rule = reply.data ? reply.data.rule : 'rate';
    showNotice(`Slow down: refused by the ${rule} limit.`, reply.data ? reply.data.retry_after : 0);
    return;
  }
  if (![200, 50004, 50005].includes(reply.code)) {
    showNotice(reply.code === 0 ? 'Not connected; your message was not sent.' : (reply.msg || 'Not sent'));
    return;
  }
  $('composer').value = '';
  $('antispam-notice').hidden = true;
  if (staged && state.attachment === staged) {
    state.attachment = null; // sent: the upload now belongs to the message
    renderAttachment();
  }
  const message = reply.data;
  state.delivery.set(message.id, reply.code === 50004 ? 'delivered' : 'sent');
  receive(message, true);
});

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
  const id = state.current.slice(2);
  const result = await api('GET', `/groups/${id}/members?limit=100`);
  if (!result.ok) return;
  list.replaceChildren(...result.data.members.map((m) => el('li', { 'data-testid': 'member', 'data-user-id': m.user_id },
    el('span', { class: 'title', text: m.nickname || m.nick_name || m.user_name }),
    el('span', { class: 'meta', text: m.role }))));
  list.hidden = false;
});

$('back').addEventListener('click', () => {
  state.current = null;
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
