// login.js - fills the sign-in form's `next` field and explains a failed sign-in in plain words.
// The form itself posts without script; this only adds the message and the return path.

const MESSAGES = {
  bad_key: 'That key was not recognised. Check that it was pasted completely, or ask an administrator for a new one.',
  role_not_allowed: 'This key cannot sign in here: buyer and platform keys are for the apps and the API. Use a warehouse, mediator or administrator key.',
  session_expired: 'Your session has ended. Sign in again to continue.',
};

const params = new URLSearchParams(location.search);
const next = params.get('next') || '';
// Only our own pages; the server checks again.
if (/^\/ui\/[A-Za-z0-9/_-]*$/.test(next) && !next.includes('//')) {
  document.getElementById('next').value = next;
}

const msg = document.getElementById('login-msg');
const code = params.get('error');
if (code) {
  msg.textContent = MESSAGES[code] || 'Signing in failed. Try again.';
  msg.className = 'msg msg-error';
  msg.hidden = false;
} else if (params.has('signed_out')) {
  msg.textContent = 'You are signed out.';
  msg.className = 'msg msg-ok';
  msg.hidden = false;
}

document.getElementById('login-form').addEventListener('submit', (ev) => {
  const key = document.getElementById('key');
  key.value = key.value.trim();
  if (!key.value) {
    ev.preventDefault();
    msg.textContent = 'Paste your key first.';
    msg.className = 'msg msg-error';
    msg.hidden = false;
  }
});
