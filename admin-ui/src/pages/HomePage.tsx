// Home (工作台): for now who is signed in and in which company — the work lists of issue 16
// (tasks due, tickets by SLA, approvals, notifications) come with their screens.
import { Card, Descriptions, Space, Tag, Typography } from "antd";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { useSession } from "../session/session";
import { PageHeader } from "../layout/PageHeader";

export default function HomePage() {
  const { t } = useTranslation();
  const { me } = useSession();
  if (!me) return null;
  const name = me.user?.name ?? me.principal.name;
  return (
    <>
      <PageHeader title={t("home.title")} crumbs={[{ title: t("nav.home") }]} />
      <Space direction="vertical" size="middle" style={{ width: "100%" }}>
        <Typography.Title level={4} data-testid="greeting">
          {t("home.greeting", { name })}
        </Typography.Title>
        <Card title={t("home.account")}>
          <Descriptions column={{ xs: 1, md: 2 }} size="small">
            <Descriptions.Item label={t("home.company")}>
              <span data-testid="company">{me.tenant.name}</span>
            </Descriptions.Item>
            <Descriptions.Item label={t("home.slug")}>{me.tenant.slug}</Descriptions.Item>
            <Descriptions.Item label={t("home.user")}>{name}</Descriptions.Item>
            <Descriptions.Item label={t("home.email")}>{me.user?.email ?? "—"}</Descriptions.Item>
            <Descriptions.Item label={t("home.roles")}>
              {me.roles.map((r) => (
                <Tag key={r}>{r}</Tag>
              ))}
            </Descriptions.Item>
            <Descriptions.Item label={t("home.sessionEnds")}>
              {me.session_expires_at ? dayjs(me.session_expires_at).format(t("format.dateTime")) : "—"}
            </Descriptions.Item>
            <Descriptions.Item label={t("home.mfa")}>
              {me.mfa_enabled ? t("home.mfaOn") : t("home.mfaOff")}
            </Descriptions.Item>
          </Descriptions>
        </Card>
      </Space>
    </>
  );
}
