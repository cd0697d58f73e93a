// Settings → Plugins (/settings/plugins), for holders of plugins:manage: the installs (switch
// on and off, runs) and the uploaded packages (upload, install) as two tabs; the tab lives in
// the address.
import { useSearchParams } from "react-router-dom";
import { Result, Tabs } from "antd";
import { useTranslation } from "react-i18next";
import { PageHeader } from "../layout/PageHeader";
import { useSession } from "../session/session";
import { InstallsTable } from "./InstallsTable";
import { PackagesTable } from "./PackagesTable";

export default function PluginsPage() {
  const { t } = useTranslation();
  const { me } = useSession();
  const [params, setParams] = useSearchParams();
  const tab = params.get("tab") === "packages" ? "packages" : "installs";
  const crumbs = [{ title: t("nav.settings") }, { title: t("nav.plugins") }];

  if (!me?.permissions.includes("plugins:manage")) {
    return <Result status="403" title={t("plugins.forbidden")} />;
  }
  return (
    <>
      <PageHeader title={t("nav.plugins")} crumbs={crumbs} />
      <Tabs
        activeKey={tab}
        onChange={(k) => setParams({ tab: k })}
        items={[
          { key: "installs", label: t("plugins.installsTab"), children: <InstallsTable onAdd={() => setParams({ tab: "packages" })} /> },
          { key: "packages", label: t("plugins.packages.tab"), children: <PackagesTable onInstalled={() => setParams({ tab: "installs" })} /> },
        ]}
      />
    </>
  );
}
