// The content header of every page: breadcrumbs (below the top level), the title and the
// page's primary action.
import type { ReactNode } from "react";
import { Breadcrumb, Flex, Typography } from "antd";
import { Link } from "react-router-dom";

export interface Crumb {
  title: string;
  to?: string;
}

export function PageHeader({ title, crumbs, extra }: { title: string; crumbs: Crumb[]; extra?: ReactNode }) {
  return (
    <div className="crm-page-header">
      {crumbs.length > 1 && (
        <Breadcrumb
          items={crumbs.map((c) => ({ title: c.to ? <Link to={c.to}>{c.title}</Link> : c.title }))}
        />
      )}
      <Flex justify="space-between" align="center" wrap="wrap" gap={8}>
        <Typography.Title level={3} style={{ margin: 0 }}>
          {title}
        </Typography.Title>
        {extra}
      </Flex>
    </div>
  );
}
