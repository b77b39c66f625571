// Entry point of the bundle: the console over gRPC-Web to the control plane that
// served this page.
import { render } from "preact";
import { App } from "./app";
import { browserTransport } from "./api";
import "./app.css";

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App connect={browserTransport} />, root);
}
