// Every string the app shows comes from these files: a key missing in either language, an
// empty text, a placeholder one side lacks, or a key the code uses that neither defines,
// fails here.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import en from "./en.json";
import zhCN from "./zh-CN.json";

type Tree = { [key: string]: string | Tree };

function flatten(tree: Tree, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "string") out.set(key, v);
    else for (const [kk, vv] of flatten(v, key)) out.set(kk, vv);
  }
  return out;
}

const locales = { "zh-CN": flatten(zhCN), en: flatten(en) };
const placeholders = (s: string) => [...s.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]).sort();

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(name) && !name.endsWith(".test.ts") && !name.endsWith(".d.ts") ? [path] : [];
  });
}

describe("locales", () => {
  it("have the same keys", () => {
    const zhKeys = [...locales["zh-CN"].keys()].sort();
    const enKeys = [...locales.en.keys()].sort();
    expect(zhKeys.filter((k) => !locales.en.has(k)), "missing in en.json").toEqual([]);
    expect(enKeys.filter((k) => !locales["zh-CN"].has(k)), "missing in zh-CN.json").toEqual([]);
  });

  it("have no empty texts and the same placeholders", () => {
    for (const [key, zh] of locales["zh-CN"]) {
      const english = locales.en.get(key) ?? "";
      expect(zh.trim(), `zh-CN ${key}`).not.toBe("");
      expect(english.trim(), `en ${key}`).not.toBe("");
      expect(placeholders(zh), `placeholders of ${key}`).toEqual(placeholders(english));
    }
  });

  it("define every key the code uses", () => {
    const used = new Set<string>();
    for (const file of sources(join(__dirname, ".."))) {
      const code = readFileSync(file, "utf8");
      for (const m of code.matchAll(/\bt\(\s*"([^"]+)"/g)) used.add(m[1] ?? "");
      // Keys built from a fixed prefix: t(`lang.${l}`) must exist for every locale.
      for (const m of code.matchAll(/\bt\(\s*`([a-zA-Z.]+)\.\$\{/g)) {
        const prefix = `${m[1]}.`;
        expect([...locales.en.keys()].some((k) => k.startsWith(prefix)), `${prefix}* in ${file}`).toBe(true);
      }
    }
    expect(used.size).toBeGreaterThan(10);
    for (const key of used) {
      expect(locales["zh-CN"].has(key), `zh-CN lacks ${key}`).toBe(true);
      expect(locales.en.has(key), `en lacks ${key}`).toBe(true);
    }
  });

  it("leave no visible literal in the components", () => {
    // Text between tags and the visible string props: words belong in the locale files. The
    // logo's letters are the brand, not a word.
    const allowed = new Set(["TC"]);
    const found: string[] = [];
    for (const file of sources(join(__dirname, "..")).filter((f) => f.endsWith(".tsx"))) {
      const code = readFileSync(file, "utf8");
      for (const m of code.matchAll(/>([^<>{}]*)<\//g)) {
        const text = (m[1] ?? "").trim();
        if (/[A-Za-z\u4e00-\u9fff]/.test(text) && !allowed.has(text)) found.push(`${file}: ${text}`);
      }
      for (const m of code.matchAll(/\b(title|placeholder|label|aria-label|message|description|subTitle|extra|alt)="([^"]*)"/g)) {
        found.push(`${file}: ${m[0]}`);
      }
    }
    expect(found).toEqual([]);
  });

  it("name both languages in their own script", () => {
    expect(locales["zh-CN"].get("lang.zh-CN")).toBe("中文");
    expect(locales.en.get("lang.en")).toBe("English");
  });
});
