// ferry's web file manager: one page over the REST API (/api/v1). No framework, no build step;
// the CSP allows only this script, so all markup is built with DOM calls and styled by classes.
'use strict';

const API = '/api/v1';

const MESSAGES = {
  permission_denied: 'You do not have permission to do that.',
  outside_home: 'You do not have permission to go outside your home folder.',
  no_space: 'Storage is full.',
  folder_not_empty: 'The folder is not empty. Delete what is inside it first.',
  not_found: 'That file or folder no longer exists.',
  invalid_path: 'That name is not allowed.',
  not_a_folder: 'That is a file, not a folder.',
  is_a_folder: 'That is a folder, not a file.',
  unsupported: 'The server does not support that here.',
  shutting_down: 'The server is restarting. Try again in a moment.',
  storage_error: 'The storage is unavailable. Try again in a moment.',
};

const state = {
  csrf: null,       // from login; after a reload, read from the ferry_csrf cookie
  path: [],         // the current folder, as decoded name segments
  sort: 'name',
  order: 'asc',
  loading: 0,       // increases per listing request, so a late answer for another folder is dropped
};

const $ = (id) => document.getElementById(id);

/** Creates an element with a class, text and attributes. */
function el(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// ---- Paths -------------------------------------------------------------------------------------

const encodePath = (segments) => segments.map(encodeURIComponent).join('/');
const fileUrl = (segments) => segments.length ? `${API}/files/${encodePath(segments)}` : `${API}/files`;
const virtualPath = (segments) => '/' + segments.join('/');

function pathFromHash() {
  try {
    return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return [];
  }
}

const folderHref = (segments) => '#/' + encodePath(segments);

// ---- Requests ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function csrfToken() {
  if (state.csrf) return state.csrf;
  const pair = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('ferry_csrf='));
  return pair ? decodeURIComponent(pair.slice('ferry_csrf='.length)) : '';
}

function requestHeaders(method) {
  // X-Requested-With tells the server this is the page, not a script wanting a Basic challenge.
  const headers = { 'X-Requested-With': 'ferry-web' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken();
  return headers;
}

/** Turns a failed response body into an ApiError. */
function toError(status, text) {
  try {
    const body = JSON.parse(text);
    return new ApiError(status, body.code, body.message);
  } catch {
    return new ApiError(status, null, text || `HTTP ${status}`);
  }
}

/** Calls the API; answers the parsed JSON (or null), throws ApiError. */
async function api(method, url, body) {
  const headers = requestHeaders(method);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
  const text = await response.text();
  if (!response.ok) throw toError(response.status, text);
  return text ? JSON.parse(text) : null;
}

/** Shows an error: an expired session goes back to the login page, anything else to the alert. */
function fail(error, name) {
  if (error.status === 401 || error.code === 'csrf') {
    showLogin('Your session expired. Please log in again.');
    return;
  }
  let message = MESSAGES[error.code] || error.message;
  if (error.code === 'already_exists') message = `“${name || 'An item'}” already exists.`;
  else if (error.status === 413 && !error.code) message = 'That is too large for the server.';
  showAlert(name && error.code !== 'already_exists' ? `${name}: ${message}` : message);
}

function showAlert(message) {
  $('alert-text').textContent = message;
  $('alert').hidden = false;
}

function clearAlert() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

// ---- Views -------------------------------------------------------------------------------------

function showLogin(message) {
  state.csrf = null;
  for (const upload of uploads) upload.xhr.abort();
  clearAlert();
  $('files-view').hidden = true;
  $('who').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message || '';
  $('password').value = '';
  $('username').focus();
}

function showFiles(user) {
  $('login-view').hidden = true;
  $('login-error').textContent = '';
  $('user-name').textContent = user;
  $('who').hidden = false;
  $('files-view').hidden = false;
  openFolder(pathFromHash());
}

async function start() {
  try {
    const me = await api('GET', `${API}/me`);
    showFiles(me.user);
  } catch (error) {
    if (error.status === 401) showLogin();
    else {
      showLogin();
      fail(error);
    }
  }
}

async function login(event) {
  event.preventDefault();
  const button = event.submitter || $('login-form').querySelector('button');
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    const body = { username: $('username').value, password: $('password').value };
    const answer = await api('POST', `${API}/auth/login`, body);
    state.csrf = answer.csrf_token;
    $('password').value = '';
    showFiles(answer.user);
  } catch (error) {
    $('login-error').textContent = error.status === 401
      ? 'Wrong username or password.'
      : MESSAGES[error.code] || error.message;
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try {
    await api('POST', `${API}/auth/logout`);
  } catch (error) {
    if (error.status !== 401) {
      fail(error);
      return;
    }
  }
  showLogin('You are logged out.');
}

// ---- The listing -------------------------------------------------------------------------------

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

function humanSize(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

function humanTime(rfc3339) {
  if (!rfc3339) return '';
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString();
}

function openFolder(segments) {
  state.path = segments;
  renderBreadcrumbs();
  refresh();
}

/** Loads every page of the current folder and renders it. */
async function refresh() {
  const ticket = ++state.loading;
  const entries = [];
  let offset = 0;
  try {
    while (offset !== null && offset !== undefined) {
      const query = new URLSearchParams({ sort: state.sort, order: state.order, offset, limit: 10000 });
      const page = await api('GET', `${fileUrl(state.path)}?${query}`);
      if (ticket !== state.loading) return;
      entries.push(...page.entries);
      offset = page.next_offset;
    }
  } catch (error) {
    if (ticket === state.loading) fail(error);
    return;
  }
  renderRows(entries);
  renderSortHeaders();
}

function renderBreadcrumbs() {
  const list = $('breadcrumbs').querySelector('ol');
  const crumbs = [{ name: 'Home', segments: [] }].concat(
    state.path.map((name, i) => ({ name, segments: state.path.slice(0, i + 1) })),
  );
  list.replaceChildren(...crumbs.map((crumb, i) => {
    const link = el('a', { text: crumb.name, attrs: { href: folderHref(crumb.segments) } });
    if (i === crumbs.length - 1) link.setAttribute('aria-current', 'page');
    return el('li', {}, [link]);
  }));
}

function renderSortHeaders() {
  for (const th of $('file-table').querySelectorAll('th[data-sort]')) {
    const active = th.dataset.sort === state.sort;
    th.setAttribute('aria-sort', active ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none');
  }
}

function sortBy(column) {
  if (state.sort === column) state.order = state.order === 'asc' ? 'desc' : 'asc';
  else {
    state.sort = column;
    state.order = 'asc';
  }
  renderSortHeaders();
  refresh();
}

function renderRows(entries) {
  const tbody = $('file-table').querySelector('tbody');
  tbody.replaceChildren(...entries.map(renderRow));
  $('empty').hidden = entries.length > 0;
}

function renderRow(entry) {
  const segments = state.path.concat(entry.name);
  const isFolder = entry.type === 'folder';
  const name = isFolder
    ? el('a', { cls: 'folder', text: entry.name, attrs: { href: folderHref(segments) } })
    : el('span', { cls: `name ${entry.type}`, text: entry.name });

  const actions = [];
  if (entry.type === 'file') {
    actions.push(el('a', {
      cls: 'download button',
      text: 'Download',
      attrs: { href: fileUrl(segments), download: entry.name, 'aria-label': `Download ${entry.name}` },
    }));
  }
  const rename = el('button', { cls: 'rename', text: 'Rename', attrs: { type: 'button', 'aria-label': `Rename ${entry.name}` } });
  const remove = el('button', { cls: 'delete danger', text: 'Delete', attrs: { type: 'button', 'aria-label': `Delete ${entry.name}` } });
  actions.push(rename, remove);

  const nameCell = el('td', { cls: 'col-name' }, [name]);
  const row = el('tr', { attrs: { 'data-name': entry.name, 'data-type': entry.type } }, [
    nameCell,
    el('td', { cls: 'col-size', text: isFolder ? '' : humanSize(entry.size) }),
    el('td', { cls: 'col-modified', text: humanTime(entry.modified) }),
    el('td', { cls: 'col-actions' }, [el('div', { cls: 'actions' }, actions)]),
  ]);
  rename.addEventListener('click', () => startRename(nameCell, entry.name, rename));
  remove.addEventListener('click', () => confirmDelete(entry, remove));
  return row;
}

// ---- Rename, delete, new folder ----------------------------------------------------------------

/** Checks a name typed by the user; answers an error message or null. */
function badName(name) {
  if (!name) return 'Enter a name.';
  if (name.includes('/')) return 'A name cannot contain “/”.';
  if (name === '.' || name === '..') return 'That name is not allowed.';
  return null;
}

function startRename(cell, oldName, renameButton) {
  const previous = [...cell.childNodes];
  const input = el('input', { cls: 'rename-input', attrs: { 'aria-label': `New name for ${oldName}`, autocomplete: 'off' } });
  input.value = oldName;
  const save = el('button', { cls: 'rename-save primary', text: 'Save', attrs: { type: 'button' } });
  const cancel = el('button', { cls: 'rename-cancel', text: 'Cancel', attrs: { type: 'button' } });
  const form = el('div', { cls: 'rename-form' }, [input, save, cancel]);
  cell.replaceChildren(form);
  renameButton.disabled = true;

  const close = () => {
    cell.replaceChildren(...previous);
    renameButton.disabled = false;
    renameButton.focus();
  };
  const submit = async () => {
    const newName = input.value.trim();
    if (newName === oldName) return close();
    const problem = badName(newName);
    if (problem) return showAlert(problem);
    save.disabled = true;
    try {
      await api('POST', `${API}/rename`, {
        from: virtualPath(state.path.concat(oldName)),
        to: virtualPath(state.path.concat(newName)),
      });
      clearAlert();
      await refresh();
    } catch (error) {
      save.disabled = false;
      fail(error, newName);
    }
  };
  save.addEventListener('click', submit);
  cancel.addEventListener('click', close);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') submit();
    else if (event.key === 'Escape') close();
  });
  input.focus();
  input.setSelectionRange(0, oldName.lastIndexOf('.') > 0 ? oldName.lastIndexOf('.') : oldName.length);
}

/** Opens the confirmation dialog; resolves to true when the user confirms. */
function confirmDialog(text) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
  });
}

async function confirmDelete(entry, button) {
  const what = entry.type === 'folder' ? 'folder' : 'file';
  const yes = await confirmDialog(`Delete the ${what} “${entry.name}”? This cannot be undone.`);
  if (!yes) return button.focus();
  try {
    await api('DELETE', fileUrl(state.path.concat(entry.name)));
    clearAlert();
    await refresh();
  } catch (error) {
    fail(error, entry.name);
  }
}

function openFolderDialog() {
  $('folder-name').value = '';
  $('folder-error').textContent = '';
  $('folder-dialog').showModal();
  $('folder-name').focus();
}

async function createFolder(event) {
  event.preventDefault();
  const name = $('folder-name').value.trim();
  const problem = badName(name);
  if (problem) {
    $('folder-error').textContent = problem;
    return;
  }
  const create = $('folder-create');
  create.disabled = true;
  try {
    await api('POST', `${API}/folders/${encodePath(state.path.concat(name))}`);
    $('folder-dialog').close();
    clearAlert();
    await refresh();
  } catch (error) {
    if (error.status === 401 || error.code === 'csrf') {
      $('folder-dialog').close();
      fail(error);
    } else {
      $('folder-error').textContent = error.code === 'already_exists'
        ? `“${name}” already exists.`
        : MESSAGES[error.code] || error.message;
    }
  } finally {
    create.disabled = false;
  }
}

// ---- Uploads -----------------------------------------------------------------------------------

const uploads = new Set();

function upload(file) {
  const folder = state.path.slice();
  const xhr = new XMLHttpRequest();
  const progress = el('progress', { attrs: { max: '100', value: '0', 'aria-label': `Upload of ${file.name}` } });
  const percent = el('span', { cls: 'percent', text: '0%' });
  const status = el('span', { cls: 'status', text: 'Uploading' });
  const cancel = el('button', { cls: 'cancel', text: 'Cancel', attrs: { type: 'button', 'aria-label': `Cancel upload of ${file.name}` } });
  const item = el('li', { cls: 'upload' }, [
    el('span', { cls: 'upload-name', text: file.name }), progress, percent, status, cancel,
  ]);
  $('uploads').prepend(item);
  const entry = { xhr };
  uploads.add(entry);

  const finish = (label, cls) => {
    uploads.delete(entry);
    status.textContent = label;
    item.classList.add(cls);
    cancel.textContent = 'Dismiss';
    cancel.setAttribute('aria-label', `Dismiss ${file.name}`);
  };
  const setPercent = (value) => {
    progress.value = value;
    percent.textContent = `${value}%`;
  };

  xhr.upload.addEventListener('progress', (event) => {
    if (event.lengthComputable && event.total > 0) setPercent(Math.floor((event.loaded / event.total) * 100));
  });
  xhr.addEventListener('load', () => {
    if (xhr.status >= 200 && xhr.status < 300) {
      setPercent(100);
      finish('Done', 'done');
      if (virtualPath(folder) === virtualPath(state.path)) refresh();
    } else {
      finish('Failed', 'failed');
      fail(toError(xhr.status, xhr.responseText), file.name);
    }
  });
  xhr.addEventListener('error', () => {
    finish('Failed', 'failed');
    showAlert(`${file.name}: the upload was interrupted. Check your connection.`);
  });
  xhr.addEventListener('abort', () => finish('Cancelled', 'cancelled'));
  cancel.addEventListener('click', () => {
    if (uploads.has(entry)) xhr.abort();
    else item.remove();
  });

  xhr.open('PUT', fileUrl(folder.concat(file.name)));
  for (const [key, value] of Object.entries(requestHeaders('PUT'))) xhr.setRequestHeader(key, value);
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  xhr.send(file);
}

function uploadAll(files) {
  for (const file of files) upload(file);
}

function setUpDrop() {
  const zone = $('drop-zone');
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes('Files');
  // Stop the browser from opening a file dropped next to the list.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
  zone.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    zone.classList.remove('dragging');
    if (!hasFiles(event)) return;
    const items = [...event.dataTransfer.items];
    const files = [];
    items.forEach((item) => {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry && entry.isDirectory) showAlert(`“${entry.name}” is a folder; only files can be dropped.`);
      else if (item.kind === 'file') files.push(item.getAsFile());
    });
    uploadAll(files.filter(Boolean));
  });
}

// ---- Wiring ------------------------------------------------------------------------------------

function init() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('alert-close').addEventListener('click', clearAlert);
  $('new-folder').addEventListener('click', openFolderDialog);
  $('folder-form').addEventListener('submit', createFolder);
  $('folder-cancel').addEventListener('click', () => $('folder-dialog').close());
  $('confirm-yes').addEventListener('click', () => $('confirm-dialog').close('yes'));
  $('confirm-no').addEventListener('click', () => $('confirm-dialog').close('no'));
  $('file-input').addEventListener('change', (event) => {
    uploadAll([...event.target.files]);
    event.target.value = '';
  });
  for (const th of $('file-table').querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => sortBy(th.dataset.sort));
  }
  window.addEventListener('hashchange', () => {
    if (!$('files-view').hidden) {
      clearAlert();
      openFolder(pathFromHash());
    }
  });
  setUpDrop();
  start();
}

init();
