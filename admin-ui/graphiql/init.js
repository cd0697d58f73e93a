// GraphiQL for TC CRM, served at GET /graphql from the server's own files (no CDN: intranet
// deployments work). Paste a session token or API key into the headers tab.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: "headers",
      defaultHeaders: '{\n  "Authorization": "Bearer <session token or API key>"\n}',
      defaultQuery:
        "# Your company's schema: explore it in the docs panel.\n{\n  me { name permissions }\n  customers(first: 5) {\n    totalCount\n    nodes { id name phone level }\n  }\n}\n",
    }),
  );
})();
