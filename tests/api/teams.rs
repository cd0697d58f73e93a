use crate::helpers::TestApp;
use serde_json::json;

#[tokio::test]
async fn teams_and_members() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (lead, _) = app.user_with_roles(&t, &["sales"]).await;
    let (member, _) = app.user_with_roles(&t, &["sales"]).await;
    let team = app
        .post(
            "/api/v1/teams",
            &t.token,
            json!({"name": "华东销售组", "description": "East China", "lead_id": lead}),
        )
        .await
        .expect(201);
    let id = team["id"].as_str().expect("id").to_owned();
    assert_eq!(team["member_count"], 1, "the lead is a member");
    app.post("/api/v1/teams", &t.token, json!({"name": "华东销售组"}))
        .await
        .expect_problem(409, "team.exists");
    app.post("/api/v1/teams", &t.token, json!({"name": " "}))
        .await
        .expect_problem(422, "validation.failed");

    app.post(
        &format!("/api/v1/teams/{id}/members"),
        &t.token,
        json!({"user_id": member}),
    )
    .await
    .expect(204);
    app.post(
        &format!("/api/v1/teams/{id}/members"),
        &t.token,
        json!({"user_id": member}),
    )
    .await
    .expect(204);
    let ghost = uuid::Uuid::new_v4();
    app.post(
        &format!("/api/v1/teams/{id}/members"),
        &t.token,
        json!({"user_id": ghost}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let members = app
        .get(&format!("/api/v1/teams/{id}/members"), &t.token)
        .await
        .expect(200);
    assert_eq!(members.as_array().map(Vec::len), Some(2));
    let user = app
        .get(&format!("/api/v1/users/{member}"), &t.token)
        .await
        .expect(200);
    assert_eq!(user["team_ids"], json!([id]));
    let filtered = app
        .get(&format!("/api/v1/users?team_id={id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(2));

    app.delete(&format!("/api/v1/teams/{id}/members/{member}"), &t.token)
        .await
        .expect(204);
    app.delete(&format!("/api/v1/teams/{id}/members/{member}"), &t.token)
        .await
        .expect_problem(404, "team.member_not_found");
    let patched = app
        .patch(
            &format!("/api/v1/teams/{id}"),
            &t.token,
            json!({"lead_id": null, "name": "华东一组"}),
        )
        .await
        .expect(200);
    assert!(patched.get("lead_id").is_none());
    assert_eq!(patched["name"], "华东一组");

    // A user created straight into a team.
    let joined = app
        .post("/api/v1/users", &t.token, json!({"email": "z@x.com", "name": "Z", "password": crate::helpers::PASSWORD, "team_id": id}))
        .await
        .expect(201);
    assert_eq!(joined["team_ids"], json!([id]));

    app.delete(&format!("/api/v1/teams/{id}"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/teams/{id}"), &t.token)
        .await
        .expect_problem(404, "team.not_found");
    let lead_user = app
        .get(&format!("/api/v1/users/{lead}"), &t.token)
        .await
        .expect(200);
    assert_eq!(lead_user["team_ids"], json!([]));
}
