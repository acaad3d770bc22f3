/**
 * Tiny DOM helpers. Text always goes in as text nodes (never innerHTML), so server data
 * such as a filename or an error message can never become markup.
 */

/**
 * Create an element.
 * props: `class`, `text`, `dataset` (object), `on<event>` (listener), booleans such as
 * `hidden`/`disabled` (set as properties), anything else as an attribute.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Remove every child of a node. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/** Replace a node's children (strings become text nodes). */
export function replaceChildren(node, ...children) {
  clear(node);
  append(node, children);
}

/** Show or hide an element with the `hidden` attribute. */
export function show(node, visible) {
  node.hidden = !visible;
}

/** Set a class list exactly (a space-separated string), leaving no stale classes behind. */
export function setClasses(node, classes) {
  if (node.className !== classes) node.className = classes;
}
