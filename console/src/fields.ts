// Form fields held in component state, so a re-render never undoes what the user
// typed; `resetKey` (the address's query) starts them again from `initial` when the
// page's filters change from outside the form (a link, Back).
import { useState } from "preact/hooks";

type Values = Record<string, string>;

export interface Bound {
  value: string;
  onInput(e: Event): void;
  onChange(e: Event): void;
}

export function useFields<T extends Values>(
  initial: T,
  resetKey = "",
): { values: T; bind(name: keyof T & string): Bound; set(name: keyof T & string, value: string): void } {
  const [state, setState] = useState({ key: resetKey, values: initial });
  const values = state.key === resetKey ? state.values : initial;
  const set = (name: keyof T & string, value: string) =>
    setState((s) => ({ key: resetKey, values: { ...(s.key === resetKey ? s.values : initial), [name]: value } }));
  const bind = (name: keyof T & string): Bound => {
    const update = (e: Event) => set(name, (e.currentTarget as HTMLInputElement).value);
    return { value: values[name], onInput: update, onChange: update };
  };
  return { values, bind, set };
}
