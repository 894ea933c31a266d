/** A few lines of DOM building: text always goes in as text, never as HTML. */
type Child = Node | string | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== undefined && c !== false) node.append(c);
  return node;
}

/** Shows `view` as the page's content and moves the focus to its heading (keyboard and screen-reader users start there). */
export function show(view: HTMLElement): void {
  const main = document.getElementById('main') as HTMLElement;
  main.replaceChildren(view);
  const heading = view.querySelector('h2');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

/** A message for everyone, screen readers included (the page's live region). */
export function announce(text: string): void {
  const status = document.getElementById('status') as HTMLElement;
  status.textContent = text;
}

export function errorBox(message: string): HTMLElement {
  return el('p', { role: 'alert', class: 'error' }, message);
}

/** A button that runs `run` once per click (disabled meanwhile) and shows its failure in `errors`. */
export function actionButton(label: string, run: () => Promise<void>, errors: HTMLElement, cls?: string): HTMLButtonElement {
  const b = el('button', { type: 'button', ...(cls ? { class: cls } : {}) }, label);
  b.addEventListener('click', () => {
    b.disabled = true;
    run().catch((err: Error) => {
      b.disabled = false;
      errors.replaceChildren(errorBox(err.message));
    });
  });
  return b;
}
