// 中文 / English in the top bar. The choice applies at once, is remembered in this browser,
// and is saved in the user's `locale` when the user may edit users (PATCH /users/{id}); a
// user's saved locale is applied when the workspace opens.
import { useEffect, useRef } from "react";
import { App, Button, Dropdown } from "antd";
import { GlobalOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap, type Me } from "../api/client";
import { applyLocale } from "../i18n";
import { isLocale, LOCALES, type Locale } from "../locale";

/** Without `me` (the sign-in pages) the choice is only applied and remembered here. */
export function LanguageSwitch({ me, compact }: { me?: Me; compact: boolean }) {
  const { t, i18n } = useTranslation();
  const { message } = App.useApp();
  const applied = useRef(false);

  useEffect(() => {
    if (applied.current) return;
    applied.current = true;
    const saved = me?.user?.locale;
    if (isLocale(saved) && saved !== i18n.language) applyLocale(saved);
  }, [me, i18n]);

  const choose = async (locale: Locale) => {
    applyLocale(locale);
    if (!me?.user || !me.permissions.includes("users:manage")) return;
    try {
      unwrap(await api.PATCH("/users/{id}", { params: { path: { id: me.user.id } }, body: { locale } }));
    } catch (e) {
      message.error(t("lang.saveFailed", { detail: e instanceof Error ? e.message : String(e) }));
    }
  };

  return (
    <Dropdown
      trigger={["click"]}
      menu={{
        selectable: true,
        selectedKeys: [i18n.language],
        items: LOCALES.map((l) => ({ key: l, label: t(`lang.${l}`) })),
        onClick: ({ key }) => {
          if (isLocale(key)) void choose(key);
        },
      }}
    >
      <Button type="text" icon={<GlobalOutlined />} aria-label={t("lang.switch")} data-testid="lang-switch">
        {!compact && t(`lang.${isLocale(i18n.language) ? i18n.language : "en"}`)}
      </Button>
    </Dropdown>
  );
}
