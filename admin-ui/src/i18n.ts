import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import dayjs from "dayjs";
import "dayjs/locale/zh-cn";
import "dayjs/locale/en";
import en from "./locales/en.json";
import zhCN from "./locales/zh-CN.json";
import { LOCALE_KEY, type Locale, pickLocale } from "./locale";

export const resources = { "zh-CN": { translation: zhCN }, en: { translation: en } } as const;

function stored(): string | null {
  try {
    return localStorage.getItem(LOCALE_KEY);
  } catch {
    return null;
  }
}

const initial = pickLocale(stored(), navigator.languages ?? [navigator.language]);

void i18n.use(initReactI18next).init({
  resources,
  lng: initial,
  fallbackLng: false,
  interpolation: { escapeValue: false },
  returnNull: false,
});

/** Switches the app's language (strings, dates, Ant Design's own texts) and remembers it. */
export function applyLocale(locale: Locale): void {
  void i18n.changeLanguage(locale);
  dayjs.locale(locale === "zh-CN" ? "zh-cn" : "en");
  document.documentElement.lang = locale;
  try {
    localStorage.setItem(LOCALE_KEY, locale);
  } catch {
    // Private mode: the choice lasts for this tab only.
  }
}

applyLocale(initial);

export default i18n;
