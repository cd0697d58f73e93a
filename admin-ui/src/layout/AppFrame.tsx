// The workspace frame (UI.md): sider with the company and the menu, a top bar with the
// language switch and the user menu, and the page below. At phone width the sider becomes
// a drawer opened from the top bar.
import { useState } from "react";
import { Link, Outlet, useLocation } from "react-router-dom";
import { Avatar, Button, Drawer, Dropdown, Grid, Layout, Menu, Space, Typography } from "antd";
import type { MenuProps } from "antd";
import {
  AppstoreOutlined,
  AuditOutlined,
  CalendarOutlined,
  CheckSquareOutlined,
  ContactsOutlined,
  CustomerServiceOutlined,
  FundOutlined,
  HomeOutlined,
  LogoutOutlined,
  MenuFoldOutlined,
  MenuUnfoldOutlined,
  SettingOutlined,
  TeamOutlined,
  UserOutlined,
} from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import type { Me } from "../api/client";
import { useSession } from "../session/session";
import { LanguageSwitch } from "./LanguageSwitch";
import { NotificationBell } from "../notifications/NotificationBell";
import { useObjects } from "../records/useObject";
import { objectLabel } from "../records/list";

/** The built-in objects in the menu, in UI.md's order. */
const BUILTIN_MENU = [
  { key: "customers", icon: <TeamOutlined /> },
  { key: "contacts", icon: <ContactsOutlined /> },
  { key: "opportunities", icon: <FundOutlined /> },
  { key: "activities", icon: <CalendarOutlined /> },
  { key: "tasks", icon: <CheckSquareOutlined /> },
] as const;

const { Header, Sider, Content } = Layout;

export function AppFrame({ me }: { me: Me }) {
  const { t, i18n } = useTranslation();
  const objects = useObjects();
  const screens = Grid.useBreakpoint();
  const phone = !screens.md;
  const [collapsed, setCollapsed] = useState(false);
  const [drawer, setDrawer] = useState(false);
  const location = useLocation();
  const { signOut } = useSession();

  const custom = (objects.data ?? []).filter((o) => !o.builtin);
  const items: MenuProps["items"] = [
    { key: "/", icon: <HomeOutlined />, label: <Link to="/">{t("nav.home")}</Link> },
    ...BUILTIN_MENU.map((o) => ({
      key: `/records/${o.key}`,
      icon: o.icon,
      label: <Link to={`/records/${o.key}`}>{t(`nav.${o.key}`)}</Link>,
    })),
    { key: "/tickets", icon: <CustomerServiceOutlined />, label: <Link to="/tickets">{t("nav.tickets")}</Link> },
    { key: "/approvals", icon: <AuditOutlined />, label: <Link to="/approvals">{t("nav.approvals")}</Link> },
    ...custom.map((o) => ({
      key: `/records/${o.key}`,
      icon: <AppstoreOutlined />,
      label: <Link to={`/records/${o.key}`}>{objectLabel(o, i18n.language)}</Link>,
    })),
    // Settings: only the pages this user may manage; none, no Settings.
    ...(me.permissions.includes("plugins:manage")
      ? [
          {
            key: "settings",
            icon: <SettingOutlined />,
            label: t("nav.settings"),
            children: [{ key: "/settings/plugins", label: <Link to="/settings/plugins">{t("nav.plugins")}</Link> }],
          },
        ]
      : []),
  ];
  const parts = location.pathname.split("/");
  // /tickets/… and /approvals select their own item; /records/<object>/… the object's and
  // /settings/<page> its page.
  const selected = (parts[1] === "records" || parts[1] === "settings" ? parts.slice(0, 3) : parts.slice(0, 2)).join("/") || "/";

  const brand = (small: boolean) => (
    <div className="crm-brand">
      <div className="crm-logo" aria-hidden>
        TC
      </div>
      {!small && (
        <Typography.Text strong ellipsis className="crm-company">
          {me.tenant.name}
        </Typography.Text>
      )}
    </div>
  );
  const menu = (
    <Menu
      mode="inline"
      selectedKeys={[selected]}
      defaultOpenKeys={parts[1] === "settings" ? ["settings"] : []}
      items={items}
      onClick={() => setDrawer(false)}
      aria-label={t("nav.label")}
    />
  );

  const userMenu: MenuProps["items"] = [
    {
      key: "who",
      disabled: true,
      label: (
        <div>
          <div>{me.user?.name ?? me.principal.name}</div>
          <Typography.Text type="secondary">{me.user?.email}</Typography.Text>
        </div>
      ),
    },
    { type: "divider" },
    {
      key: "signout",
      icon: <LogoutOutlined />,
      label: t("user.signOut"),
      onClick: () => void signOut(),
    },
  ];

  return (
    <Layout style={{ minHeight: "100vh" }}>
      {phone ? (
        <Drawer
          placement="left"
          open={drawer}
          onClose={() => setDrawer(false)}
          width={240}
          styles={{ body: { padding: 0 } }}
          title={brand(false)}
        >
          {menu}
        </Drawer>
      ) : (
        <Sider
          theme="light"
          width={220}
          collapsible
          collapsed={collapsed}
          onCollapse={setCollapsed}
          trigger={null}
          className="crm-sider"
        >
          {brand(collapsed)}
          {menu}
        </Sider>
      )}
      <Layout>
        <Header className="crm-header">
          <Button
            type="text"
            aria-label={t(phone ? "nav.open" : collapsed ? "nav.expand" : "nav.collapse")}
            icon={phone || collapsed ? <MenuUnfoldOutlined /> : <MenuFoldOutlined />}
            onClick={() => (phone ? setDrawer(true) : setCollapsed(!collapsed))}
          />
          <Space size={phone ? "small" : "middle"}>
            <NotificationBell />
            <LanguageSwitch me={me} compact={phone} />
            <Dropdown menu={{ items: userMenu }} trigger={["click"]}>
              <Button type="text" aria-label={t("user.menu")} data-testid="user-menu">
                <Space>
                  <Avatar size="small" icon={<UserOutlined />} />
                  {!phone && (me.user?.name ?? me.principal.name)}
                </Space>
              </Button>
            </Dropdown>
          </Space>
        </Header>
        <Content className="crm-content">
          <Outlet />
        </Content>
      </Layout>
    </Layout>
  );
}
