// One card of Home: a title with a link to the whole list, and its loading, error and empty
// states (skeletons, the API's message with a retry, what to do).
import type { ReactNode } from "react";
import { Alert, Button, Card, Skeleton, Typography } from "antd";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";

interface Props {
  title: ReactNode;
  more?: string;
  testId: string;
  loading: boolean;
  error: unknown;
  retry: () => void;
  empty: string | null;
  children?: ReactNode;
}

export function HomeCard({ title, more, testId, loading, error, retry, empty, children }: Props) {
  const { t } = useTranslation();
  const body = loading ? (
    <Skeleton active paragraph={{ rows: 2 }} />
  ) : error ? (
    <Alert
      type="error"
      showIcon
      message={error instanceof Error ? error.message : String(error)}
      action={<Button size="small" onClick={retry}>{t("error.retry")}</Button>}
    />
  ) : empty !== null ? (
    // Small on purpose: Home has several cards, and an empty one should not push the rest down.
    <Typography.Paragraph type="secondary" style={{ margin: "8px 0" }}>
      {empty}
    </Typography.Paragraph>
  ) : (
    children
  );
  return (
    <Card size="small" title={title} extra={more ? <Link to={more}>{t("home.viewAll")}</Link> : undefined} data-testid={testId}>
      {body}
    </Card>
  );
}
