// Home: the things started most often, one click away.
import { Button, Flex } from "antd";
import { CustomerServiceOutlined, PhoneOutlined, UserAddOutlined } from "@ant-design/icons";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";

export function QuickActions() {
  const { t } = useTranslation();
  return (
    <Flex wrap="wrap" gap={8} data-testid="quick-actions">
      <Link to="/records/customers/new">
        <Button type="primary" icon={<UserAddOutlined />}>
          {t("home.newCustomer")}
        </Button>
      </Link>
      <Link to="/records/tickets/new">
        <Button icon={<CustomerServiceOutlined />}>{t("home.newTicket")}</Button>
      </Link>
      <Link to="/records/activities/new">
        <Button icon={<PhoneOutlined />}>{t("home.logActivity")}</Button>
      </Link>
    </Flex>
  );
}
