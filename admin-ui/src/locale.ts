// The two languages of the app and how one is chosen.
export const LOCALES = ["zh-CN", "en"] as const;
export type Locale = (typeof LOCALES)[number];

export function isLocale(value: unknown): value is Locale {
  return typeof value === "string" && (LOCALES as readonly string[]).includes(value);
}

/**
 * The user's stored choice when there is one, else zh-CN for a Chinese browser and English
 * for any other.
 */
export function pickLocale(stored: string | null | undefined, browser: readonly string[]): Locale {
  if (isLocale(stored)) return stored;
  for (const lang of browser) {
    const l = lang.toLowerCase();
    if (l.startsWith("zh")) return "zh-CN";
    if (l.startsWith("en")) return "en";
  }
  return browser.length === 0 ? "zh-CN" : "en";
}

export const LOCALE_KEY = "crm.locale";
