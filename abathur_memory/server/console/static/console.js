// abathur-memory console: ask before a form that writes (data-confirm), and a Back link.
// Plain JavaScript, no dependencies; the pages work without it.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  if (event.target.matches && event.target.matches("[data-back]")) {
    event.preventDefault();
    history.back();
  }
});
