// Home (工作台): a greeting and quick actions, then my work: tasks due today and overdue, my
// open tickets by SLA, customers whose follow-up is overdue, approvals waiting for me and
// unread notifications.
import { Col, Flex, Row, Typography } from "antd";
import { useTranslation } from "react-i18next";
import { useSession } from "../session/session";
import { PageHeader } from "../layout/PageHeader";
import { QuickActions } from "../home/QuickActions";
import { MyTasks } from "../home/MyTasks";
import { MyTickets } from "../home/MyTickets";
import { FollowUps } from "../home/FollowUps";
import { MyApprovals } from "../home/MyApprovals";
import { UnreadNotices } from "../home/UnreadNotices";
import { useNow } from "../tickets/useTickets";

export default function HomePage() {
  const { t } = useTranslation();
  const { me } = useSession();
  const now = useNow();
  if (!me) return null;
  const name = me.user?.name ?? me.principal.name;
  const userId = me.user?.id ?? "";
  return (
    <>
      <PageHeader title={t("home.title")} crumbs={[{ title: t("nav.home") }]} extra={<QuickActions />} />
      <Flex vertical gap={4} style={{ marginBottom: 16 }}>
        <Typography.Title level={4} style={{ margin: 0 }} data-testid="greeting">
          {t("home.greeting", { name })}
        </Typography.Title>
        <Typography.Text type="secondary" data-testid="company">
          {me.tenant.name}
        </Typography.Text>
      </Flex>
      <Row gutter={[16, 16]}>
        <Col xs={24} lg={12}>
          <MyTasks userId={userId} now={now} />
        </Col>
        <Col xs={24} lg={12}>
          <MyTickets userId={userId} now={now} />
        </Col>
        <Col xs={24} lg={8}>
          <FollowUps userId={userId} now={now} />
        </Col>
        <Col xs={24} lg={8}>
          <MyApprovals />
        </Col>
        <Col xs={24} lg={8}>
          <UnreadNotices />
        </Col>
      </Row>
    </>
  );
}
