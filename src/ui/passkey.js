// Passkeys on the hosted pages. Every form works without this script; with it, a button
// marked data-passkey="create" or "get" (hidden until this runs) fetches the WebAuthn
// options from its data-options URL, lets the browser make or use a passkey, and submits
// its form with the answer (PublicKeyCredential.toJSON()) in the `credential` field.
'use strict';
(() => {
  const supported = window.PublicKeyCredential
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';
  if (!supported) return;
  for (const button of document.querySelectorAll('button[data-passkey]')) {
    const form = button.form;
    const status = form.querySelector('[data-passkey-status]');
    const say = (text) => { if (status) status.textContent = text; };
    button.hidden = false;
    button.addEventListener('click', async (event) => {
      event.preventDefault();
      say('');
      button.disabled = true;
      try {
        const res = await fetch(button.dataset.options, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': form.elements.csrf_token.value },
          body: '{}',
        });
        if (!res.ok) throw new Error('options');
        const options = await res.json();
        const credential = button.dataset.passkey === 'create'
          ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
          : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
        form.elements.credential.value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (e) {
        button.disabled = false;
        say(button.dataset.failed || 'The passkey did not work.');
      }
    });
  }
})();
