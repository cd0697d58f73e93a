import { lazy, Suspense } from "react";
import { Navigate, Route, Routes, useLocation, useParams } from "react-router-dom";
import { App as AntApp, Button, ConfigProvider, Result, Skeleton } from "antd";
import enUS from "antd/locale/en_US";
import zhCN from "antd/locale/zh_CN";
import { useTranslation } from "react-i18next";
import { SessionProvider, useSession } from "./session/session";
import { loginPath } from "./session/next";
import { AppFrame } from "./layout/AppFrame";
import { ApiProblem } from "./api/client";

// Routes are split: the sign-in pages do not load the workspace, and the reverse.
const LoginPage = lazy(() => import("./pages/LoginPage"));
const SignupPage = lazy(() => import("./pages/SignupPage"));
const HomePage = lazy(() => import("./pages/HomePage"));
const NotFoundPage = lazy(() => import("./pages/NotFoundPage"));
const RecordListPage = lazy(() => import("./pages/RecordListPage"));
const RecordDetailPage = lazy(() => import("./pages/RecordDetailPage"));
const RecordFormPage = lazy(() => import("./pages/RecordFormPage"));
const TicketQueuePage = lazy(() => import("./tickets/TicketQueuePage"));
const TicketPage = lazy(() => import("./tickets/TicketPage"));
const ApprovalsPage = lazy(() => import("./approvals/ApprovalsPage"));
const NotificationsPage = lazy(() => import("./notifications/NotificationsPage"));
const PluginsPage = lazy(() => import("./plugins/PluginsPage"));

/** One brand colour over Ant Design's default theme (UI.md). */
const theme = { token: { colorPrimary: "#1d4ed8", borderRadius: 6 } };

export function App() {
  const { i18n } = useTranslation();
  return (
    <ConfigProvider locale={i18n.language === "en" ? enUS : zhCN} theme={theme}>
      <AntApp>
        <SessionProvider>
          <Suspense fallback={<Skeleton active style={{ padding: 24 }} />}>
            <Routes>
              <Route path="/login" element={<LoginPage />} />
              <Route path="/signup" element={<SignupPage />} />
              <Route element={<SignedIn />}>
                <Route index element={<HomePage />} />
                <Route path="tickets" element={<TicketQueuePage />} />
                <Route path="tickets/:id" element={<TicketPage />} />
                <Route path="approvals" element={<ApprovalsPage />} />
                <Route path="notifications" element={<NotificationsPage />} />
                <Route path="settings/plugins" element={<PluginsPage />} />
                <Route path="records/:object" element={<RecordListPage />} />
                <Route path="records/:object/new" element={<RecordFormPage />} />
                {/* After …/new: a tie in rank goes to the route defined first. */}
                <Route path="records/tickets/:id" element={<TicketRedirect />} />
                <Route path="records/:object/:id" element={<RecordDetailPage />} />
                <Route path="records/:object/:id/edit" element={<RecordFormPage />} />
                <Route path="*" element={<NotFoundPage />} />
              </Route>
            </Routes>
          </Suspense>
        </SessionProvider>
      </AntApp>
    </ConfigProvider>
  );
}

/** The workspace frame, once `/me` has answered; the login page otherwise. */
function SignedIn() {
  const { me, loading, error, retry } = useSession();
  const location = useLocation();
  const { t } = useTranslation();
  if (loading) return <Skeleton active style={{ padding: 24 }} />;
  // A 401 already went to the login page; anything else (offline, 5xx) is shown with a retry.
  if (!me && error && !(error instanceof ApiProblem && error.problem.status === 401)) {
    return (
      <Result
        status="warning"
        title={t("error.loadFailed")}
        subTitle={error instanceof Error ? error.message : String(error)}
        extra={<Button onClick={retry}>{t("error.retry")}</Button>}
      />
    );
  }
  if (!me) {
    return <Navigate to={loginPath(location.pathname + location.search + location.hash)} replace />;
  }
  return <AppFrame me={me} />;
}

/** A ticket opens in its workspace, also from the generic screens (a new ticket's form, links). */
function TicketRedirect() {
  const { id = "" } = useParams();
  return <Navigate to={`/tickets/${id}`} replace />;
}
