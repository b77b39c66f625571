// A DOM for component tests: happy-dom's window as the globals a browser has, at the
// origin the control plane would serve the console from.
import { GlobalRegistrator } from "@happy-dom/global-registrator";

GlobalRegistrator.register({ url: "http://127.0.0.1:50051/", width: 1280, height: 900 });
