//! The chat queries both dialects share (see `sql.rs` for why one macro serves both).

macro_rules! chat_store_impl {
    ($store:ty, $db:ty) => {
        mod chat_impl {
            use std::collections::BTreeMap;

            use sqlx::QueryBuilder;

            use super::*;
            use crate::chat::{Author, Category, ChatMessage, Room, MAX_OPEN_ROOMS};
            use crate::ids::{RoomId, StudyId, UserId};
            use crate::store::chat::{ChatLog, ChatStore, Page, RoomState};
            use crate::store::studies::Rule;
            use crate::store::{Millis, StoreError, StoreResult};
            use crate::studies::Role;

            type Conn = <$db as sqlx::Database>::Connection;
            type Db = $db;

            const MSG_SELECT: &str = "SELECT m.seq, m.client_id, m.author_id, u.display_name, m.body, m.created_at, \
                m.edited_at, m.deleted_at, m.mentions FROM chat_messages m JOIN users u ON u.id = m.author_id";
            type MsgRow = (i64, String, i64, String, String, i64, Option<i64>, Option<i64>, String);

            use super::studies_impl::membership as is_member;

            /// The seq condition, order and limit of one history page (rooms and DMs alike):
            /// `Before` reads newest first so LIMIT keeps the newest, `After` oldest first.
            fn push_page(qb: &mut QueryBuilder<Db>, seq_col: &'static str, page: Page, limit: i64) {
                match page {
                    Page::Before(Some(seq)) => {
                        qb.push(format_args!(" AND {seq_col} < ")).push_bind(seq).push(format_args!(" ORDER BY {seq_col} DESC"));
                    }
                    Page::Before(None) => {
                        qb.push(format_args!(" ORDER BY {seq_col} DESC"));
                    }
                    Page::After(seq) => {
                        qb.push(format_args!(" AND {seq_col} > ")).push_bind(seq).push(format_args!(" ORDER BY {seq_col} ASC"));
                    }
                }
                qb.push(" LIMIT ").push_bind(limit);
            }

            /// The table and author column of a log.
            fn log_columns(log: ChatLog) -> (&'static str, &'static str) {
                match log {
                    ChatLog::Room(_) => ("chat_messages", "author_id"),
                    ChatLog::Direct(..) => ("direct_messages", "sender_id"),
                }
            }

            /// The condition that selects one log's rows.
            fn push_log(qb: &mut QueryBuilder<Db>, log: ChatLog) {
                match log {
                    ChatLog::Room(room) => {
                        qb.push("room_id = ").push_bind(room.0);
                    }
                    ChatLog::Direct(a, b) => {
                        qb.push("user_a = ").push_bind(a.0).push(" AND user_b = ").push_bind(b.0);
                    }
                }
            }

            /// Pages are returned oldest first whichever way they were read.
            fn oldest_first<T>(rows: &mut [T], page: Page) {
                if matches!(page, Page::Before(_)) {
                    rows.reverse();
                }
            }

            /// Messages with their reactions, oldest first.
            async fn load(c: &mut Conn, room: i64, page: Page, limit: i64) -> Result<Vec<ChatMessage>, sqlx::Error> {
                let mut qb = QueryBuilder::<Db>::new(MSG_SELECT);
                qb.push(" WHERE m.room_id = ").push_bind(room);
                push_page(&mut qb, "m.seq", page, limit);
                let mut rows: Vec<MsgRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                oldest_first(&mut rows, page);
                let mut reactions: BTreeMap<i64, BTreeMap<String, Vec<UserId>>> = BTreeMap::new();
                if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                    let rs: Vec<(i64, i64, String)> = sqlx::query_as(
                        "SELECT seq, user_id, emoji FROM chat_reactions WHERE room_id = $1 AND seq >= $2 AND seq <= $3 \
                         ORDER BY seq, emoji, user_id",
                    )
                    .bind(room)
                    .bind(first.0)
                    .bind(last.0)
                    .fetch_all(&mut *c)
                    .await?;
                    for (seq, user, emoji) in rs {
                        reactions.entry(seq).or_default().entry(emoji).or_default().push(UserId(user));
                    }
                }
                Ok(rows
                    .into_iter()
                    .map(|r| ChatMessage {
                        seq: r.0,
                        client_id: r.1,
                        author: Author { id: UserId(r.2), display_name: r.3 },
                        body: r.4,
                        created_at: r.5,
                        edited_at: r.6,
                        deleted: r.7.is_some(),
                        reactions: reactions.remove(&r.0).unwrap_or_default(),
                        mentions: serde_json::from_str(&r.8).unwrap_or_default(),
                    })
                    .collect())
            }

            async fn room_study(c: &mut Conn, room: i64) -> Result<Option<(i64, bool)>, sqlx::Error> {
                let r: Option<(i64, Option<i64>)> = sqlx::query_as("SELECT study_id, closed_at FROM chat_rooms WHERE id = $1")
                    .bind(room)
                    .fetch_optional(&mut *c)
                    .await?;
                Ok(r.map(|(s, closed)| (s, closed.is_some())))
            }

            #[async_trait::async_trait]
            impl ChatStore for $store {
                async fn create_room(&self, study: StudyId, user: UserId, name: &str, category: Category, now: Millis) -> StoreResult<Room> {
                    let mut tx = self.begin_write().await?;
                    if is_member(&mut tx, study.0, user.0).await?.is_none() {
                        return Err(StoreError::Rule(Rule::NotFound));
                    }
                    let (open,): (i64,) =
                        sqlx::query_as("SELECT COUNT(*) FROM chat_rooms WHERE study_id = $1 AND closed_at IS NULL")
                            .bind(study.0)
                            .fetch_one(&mut *tx)
                            .await?;
                    if open >= MAX_OPEN_ROOMS {
                        return Err(StoreError::Rule(Rule::RoomLimit));
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO chat_rooms (study_id, name, category, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(study.0)
                    .bind(name)
                    .bind(category.as_str())
                    .bind(user.0)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Room { id: RoomId(id), study_id: study, name: name.to_string(), category, closed: false, last_seq: 0, unread: 0 })
                }

                async fn rooms(&self, study: StudyId, viewer: UserId) -> StoreResult<Vec<Room>> {
                    let mut tx = self.pool.begin().await?;
                    if is_member(&mut tx, study.0, viewer.0).await?.is_none() {
                        return Err(StoreError::Rule(Rule::NotFound));
                    }
                    let rows: Vec<(i64, String, String, Option<i64>, i64, i64)> = sqlx::query_as(
                        "SELECT r.id, r.name, r.category, r.closed_at, \
                         COALESCE((SELECT MAX(seq) FROM chat_messages m WHERE m.room_id = r.id), 0), \
                         (SELECT COUNT(*) FROM chat_messages m WHERE m.room_id = r.id AND m.author_id <> $2 \
                            AND m.deleted_at IS NULL AND m.seq > COALESCE((SELECT read_seq FROM chat_read_markers k \
                            WHERE k.room_id = r.id AND k.user_id = $2), 0)) \
                         FROM chat_rooms r WHERE r.study_id = $1 ORDER BY r.closed_at IS NOT NULL, r.id",
                    )
                    .bind(study.0)
                    .bind(viewer.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(rows
                        .into_iter()
                        .map(|r| Room {
                            id: RoomId(r.0),
                            study_id: study,
                            name: r.1,
                            category: Category::parse(&r.2).unwrap_or(Category::General),
                            closed: r.3.is_some(),
                            last_seq: r.4,
                            unread: r.5,
                        })
                        .collect())
                }

                async fn close_room(&self, study: StudyId, room: RoomId, leader: UserId, now: Millis) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    if is_member(&mut tx, study.0, leader.0).await? != Some(Role::Leader) {
                        return Err(StoreError::Rule(Rule::NotFound));
                    }
                    match room_study(&mut tx, room.0).await? {
                        Some((s, _)) if s == study.0 => {}
                        _ => return Err(StoreError::Rule(Rule::NotFound)),
                    }
                    sqlx::query("UPDATE chat_rooms SET closed_at = COALESCE(closed_at, $1), closed_by = COALESCE(closed_by, $2) WHERE id = $3")
                        .bind(now)
                        .bind(leader.0)
                        .bind(room.0)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn room_state(&self, room: RoomId) -> StoreResult<Option<RoomState>> {
                    let mut c = self.pool.acquire().await?;
                    let Some((study, closed)) = room_study(&mut c, room.0).await? else { return Ok(None) };
                    let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE room_id = $1")
                        .bind(room.0)
                        .fetch_one(&mut *c)
                        .await?;
                    Ok(Some(RoomState { study_id: StudyId(study), closed, last_seq: last }))
                }

                async fn room_ids(&self, study: StudyId) -> StoreResult<Vec<RoomId>> {
                    let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM chat_rooms WHERE study_id = $1")
                        .bind(study.0)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(|(r,)| RoomId(r)).collect())
                }

                async fn history(&self, study: StudyId, room: RoomId, viewer: UserId, page: Page, limit: i64) -> StoreResult<Vec<ChatMessage>> {
                    let mut tx = self.pool.begin().await?;
                    if is_member(&mut tx, study.0, viewer.0).await?.is_none() {
                        return Err(StoreError::Rule(Rule::NotFound));
                    }
                    match room_study(&mut tx, room.0).await? {
                        Some((s, _)) if s == study.0 => {}
                        _ => return Err(StoreError::Rule(Rule::NotFound)),
                    }
                    let out = load(&mut tx, room.0, page, limit).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn messages(&self, room: RoomId, page: Page, limit: i64) -> StoreResult<Vec<ChatMessage>> {
                    let mut tx = self.pool.begin().await?;
                    let out = load(&mut tx, room.0, page, limit).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn message(&self, room: RoomId, seq: i64) -> StoreResult<Option<ChatMessage>> {
                    let mut tx = self.pool.begin().await?;
                    let mut out = load(&mut tx, room.0, Page::After(seq - 1), 1).await?;
                    tx.commit().await?;
                    Ok(out.pop().filter(|m| m.seq == seq))
                }

                async fn recent_client_ids(&self, log: ChatLog, limit: i64) -> StoreResult<Vec<(UserId, String, i64)>> {
                    let (table, author) = log_columns(log);
                    let mut qb = QueryBuilder::<Db>::new("SELECT ");
                    qb.push(format_args!("{author}, client_id, seq FROM {table} WHERE "));
                    push_log(&mut qb, log);
                    qb.push(" ORDER BY seq DESC LIMIT ").push_bind(limit);
                    let rows: Vec<(i64, String, i64)> = qb.build_query_as().fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().map(|(a, c, s)| (UserId(a), c, s)).collect())
                }

                async fn client_seqs(&self, log: ChatLog, keys: &[(UserId, String)]) -> StoreResult<Vec<Option<i64>>> {
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let (table, author) = log_columns(log);
                    let mut qb = QueryBuilder::<Db>::new("SELECT ");
                    qb.push(format_args!("{author}, client_id, seq FROM {table} WHERE "));
                    push_log(&mut qb, log);
                    qb.push(" AND client_id IN (");
                    let mut ids = qb.separated(", ");
                    for (_, c) in keys {
                        ids.push_bind(c.clone());
                    }
                    qb.push(")");
                    let rows: Vec<(i64, String, i64)> = qb.build_query_as().fetch_all(&self.pool).await?;
                    Ok(keys
                        .iter()
                        .map(|(u, c)| rows.iter().find(|r| r.0 == u.0 && &r.1 == c).map(|r| r.2))
                        .collect())
                }

                async fn read_seq(&self, room: RoomId, user: UserId) -> StoreResult<i64> {
                    let r: Option<(i64,)> = sqlx::query_as("SELECT read_seq FROM chat_read_markers WHERE room_id = $1 AND user_id = $2")
                        .bind(room.0)
                        .bind(user.0)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(r.map_or(0, |(s,)| s))
                }

                async fn share_study(&self, a: UserId, b: UserId) -> StoreResult<bool> {
                    let (n,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM memberships x JOIN memberships y ON y.study_id = x.study_id \
                         WHERE x.user_id = $1 AND y.user_id = $2 AND x.left_at IS NULL AND y.left_at IS NULL",
                    )
                    .bind(a.0)
                    .bind(b.0)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(n > 0)
                }

                async fn direct_state(&self, pair: (UserId, UserId)) -> StoreResult<(i64, i64, i64)> {
                    let mut c = self.pool.acquire().await?;
                    let (last,): (i64,) =
                        sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM direct_messages WHERE user_a = $1 AND user_b = $2")
                            .bind(pair.0.0)
                            .bind(pair.1.0)
                            .fetch_one(&mut *c)
                            .await?;
                    let mut read = [0i64; 2];
                    for (i, reader) in [pair.0, pair.1].into_iter().enumerate() {
                        let r: Option<(i64,)> = sqlx::query_as(
                            "SELECT read_seq FROM direct_read_markers WHERE user_a = $1 AND user_b = $2 AND reader_id = $3",
                        )
                        .bind(pair.0.0)
                        .bind(pair.1.0)
                        .bind(reader.0)
                        .fetch_optional(&mut *c)
                        .await?;
                        read[i] = r.map_or(0, |(s,)| s);
                    }
                    Ok((last, read[0], read[1]))
                }

                async fn direct_messages(&self, pair: (UserId, UserId), page: Page, limit: i64) -> StoreResult<Vec<crate::chat::DirectMessage>> {
                    let mut qb = QueryBuilder::<Db>::new(
                        "SELECT d.seq, d.client_id, d.sender_id, u.display_name, d.body, d.created_at FROM direct_messages d \
                         JOIN users u ON u.id = d.sender_id WHERE d.user_a = ",
                    );
                    qb.push_bind(pair.0.0).push(" AND d.user_b = ").push_bind(pair.1.0);
                    push_page(&mut qb, "d.seq", page, limit);
                    let mut rows: Vec<(i64, String, i64, String, String, i64)> = qb.build_query_as().fetch_all(&self.pool).await?;
                    oldest_first(&mut rows, page);
                    Ok(rows
                        .into_iter()
                        .map(|r| crate::chat::DirectMessage {
                            seq: r.0,
                            client_id: r.1,
                            sender: Author { id: UserId(r.2), display_name: r.3 },
                            body: r.4,
                            created_at: r.5,
                        })
                        .collect())
                }

                async fn conversations(&self, user: UserId) -> StoreResult<Vec<crate::chat::Conversation>> {
                    // One query for the whole list: each conversation's last message, the other
                    // user, and my unread count past my read marker.
                    type Row = (i64, i64, String, String, i64, String, i64, String, String, i64, i64);
                    let rows: Vec<Row> = sqlx::query_as(
                        "WITH convs AS (SELECT user_a, user_b, MAX(seq) AS last_seq FROM direct_messages \
                           WHERE user_a = $1 OR user_b = $1 GROUP BY user_a, user_b) \
                         SELECT c.last_seq, o.id, o.login_id, o.display_name, o.created_at, \
                           m.client_id, m.sender_id, s.display_name, m.body, m.created_at, \
                           (SELECT COUNT(*) FROM direct_messages d WHERE d.user_a = c.user_a AND d.user_b = c.user_b \
                              AND d.sender_id <> $1 AND d.seq > COALESCE((SELECT r.read_seq FROM direct_read_markers r \
                                WHERE r.user_a = c.user_a AND r.user_b = c.user_b AND r.reader_id = $1), 0)) \
                         FROM convs c \
                         JOIN direct_messages m ON m.user_a = c.user_a AND m.user_b = c.user_b AND m.seq = c.last_seq \
                         JOIN users s ON s.id = m.sender_id \
                         JOIN users o ON o.id = CASE WHEN c.user_a = $1 THEN c.user_b ELSE c.user_a END \
                         ORDER BY m.created_at DESC, c.last_seq DESC LIMIT 200",
                    )
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows
                        .into_iter()
                        .map(|r| crate::chat::Conversation {
                            user: crate::store::User { id: UserId(r.1), login_id: r.2, display_name: r.3, created_at: r.4 },
                            last_message: Some(crate::chat::DirectMessage {
                                seq: r.0,
                                client_id: r.5,
                                sender: Author { id: UserId(r.6), display_name: r.7 },
                                body: r.8,
                                created_at: r.9,
                            }),
                            last_seq: r.0,
                            unread: r.10,
                        })
                        .collect())
                }

                async fn members_by_login(&self, study: StudyId, logins: &[String]) -> StoreResult<Vec<(String, UserId)>> {
                    if logins.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut qb = QueryBuilder::<Db>::new(
                        "SELECT u.login_id, u.id FROM users u JOIN memberships m ON m.user_id = u.id AND m.left_at IS NULL AND m.study_id = ",
                    );
                    qb.push_bind(study.0).push(" WHERE u.login_id IN (");
                    let mut sep = qb.separated(", ");
                    for l in logins {
                        sep.push_bind(l.clone());
                    }
                    qb.push(")");
                    let rows: Vec<(String, i64)> = qb.build_query_as().fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().map(|(l, u)| (l, UserId(u))).collect())
                }
            }
        }
    };
}

pub(crate) use chat_store_impl;
