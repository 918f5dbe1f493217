// Mounts the stock <moq-watch> element (@moq/watch 0.4.6, unmodified) for the query's server,
// broadcast and latency. The recorder (./tap.js) is imported first so it is in place before the
// element creates its AudioContext.
import "./tap.js";
import "@moq/watch/element";

const params = new URLSearchParams(location.search);
const watch = document.createElement("moq-watch");
watch.setAttribute("url", params.get("url") ?? new URL("/", location.href).href);
watch.setAttribute("name", params.get("name") ?? "bot");
if (params.has("latency")) watch.setAttribute("latency", params.get("latency"));
document.body.append(watch);
window.stockWatch = watch;
