// `--attack` lists with per-attack settings: "pgd:steps=20:eot=4,autoattack:steps=100,stadv",
// and AutoAttack's own component list: "autoattack:attacks=apgd-ce+square".
// The plain flags (--steps, --eot, ...) are the defaults of every attack in the list; a setting
// after an attack's name overrides them for that attack alone, so one list can run PGD-20 and
// a full 100-iteration AutoAttack side by side, each recorded with its own settings.

import { type AttackName, type AttackParamsInput, parseAttackName } from "../eval/attacks.ts";
import { enumFlag, epsFlag, fractionFlag, intFlag } from "./flags.ts";

const KEYS = [
  "norm",
  "eps",
  "steps",
  "step-size",
  "restarts",
  "eot",
  "queries",
  "bound",
  "tau",
  "kappa",
  "attacks",
] as const;

/** Parses one --attack list against the defaults given by the plain flags. */
export function parseAttackList(
  text: string,
  defaults: AttackParamsInput,
): { name: AttackName; input: AttackParamsInput }[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`--attack: expected a list of attacks, got "${text}"`);
  const names = new Set<string>();
  return items.map((item) => {
    const [head, ...settings] = item.split(":").map((s) => s.trim());
    const name = parseAttackName(head);
    if (names.has(name)) {
      throw new Error(
        `--attack: ${name} is listed twice; give each attack once, with its settings`,
      );
    }
    names.add(name);
    const input: AttackParamsInput = { ...defaults };
    const seen = new Set<string>();
    for (const kv of settings) {
      const eq = kv.indexOf("=");
      const key = eq < 0 ? kv : kv.slice(0, eq);
      const value = eq < 0 ? "" : kv.slice(eq + 1);
      const flag = `--attack ${name}:${key}`;
      if (!(KEYS as readonly string[]).includes(key)) {
        throw new Error(`${flag}: unknown setting "${key}" (one of ${KEYS.join(", ")})`);
      }
      if (seen.has(key)) throw new Error(`${flag}: given twice`);
      seen.add(key);
      if (eq < 0 || value === "") throw new Error(`${flag}: expected ${key}=VALUE`);
      switch (key as typeof KEYS[number]) {
        case "norm":
          input.norm = enumFlag(flag, value.toLowerCase(), ["linf", "l2"] as const);
          break;
        case "eps":
          // Checked against the norm after all settings are read.
          input.eps = fractionFlag(flag, value, { min: 0 });
          break;
        case "steps":
          input.steps = intFlag(flag, value, { min: 1 });
          break;
        case "step-size":
          input.stepSize = fractionFlag(flag, value, { min: 0, minExclusive: true });
          break;
        case "restarts":
          input.restarts = intFlag(flag, value, { min: 1 });
          break;
        case "eot":
          input.eot = intFlag(flag, value, { min: 1 });
          break;
        case "queries":
          input.queries = intFlag(flag, value, { min: 1 });
          break;
        case "bound":
          input.bound = fractionFlag(flag, value, { min: 0, minExclusive: true });
          break;
        case "tau":
          input.tau = fractionFlag(flag, value, { min: 0 });
          break;
        case "kappa":
          input.kappa = fractionFlag(flag, value, { min: 0 });
          break;
        case "attacks":
          // AutoAttack components joined by "+": autoattack:attacks=apgd-ce+square
          input.components = value.split("+").map((c) => c.trim());
          break;
      }
    }
    if (seen.has("eps") || seen.has("norm")) {
      const norm = input.norm ?? "linf";
      if (input.eps !== undefined) epsFlag(String(input.eps), norm);
      else if (seen.has("norm")) input.eps = undefined; // the norm's default radius
    }
    return { name, input };
  });
}
