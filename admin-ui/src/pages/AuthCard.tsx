// The frame of the sign-in pages: a centred card with the product name and the language switch.
import type { ReactNode } from "react";
import { Card, Typography } from "antd";
import { useTranslation } from "react-i18next";
import { LanguageSwitch } from "../layout/LanguageSwitch";

export function AuthCard({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useTranslation();
  return (
    <main className="crm-auth">
      <div className="crm-auth-top">
        <LanguageSwitch compact={false} />
      </div>
      <Card className="crm-auth-card">
        <div className="crm-auth-brand">
          <div className="crm-logo" aria-hidden>
            TC
          </div>
          <Typography.Text strong>{t("app.name")}</Typography.Text>
        </div>
        <Typography.Title level={3}>{title}</Typography.Title>
        {children}
      </Card>
    </main>
  );
}
