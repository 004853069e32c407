//! The query text both dialects share. SQLite accepts `$1` placeholders, `RETURNING` and
//! `ON CONFLICT … DO UPDATE`, so one body serves both; the macro stamps it out per pool type.

/// Rows per multi-row INSERT: 7 parameters each stays far below SQLite's 32766-parameter
/// and Postgres's 65535-parameter limits.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

macro_rules! shared_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn fetch_user(
                &self,
                id: crate::ids::UserId,
            ) -> crate::store::StoreResult<Option<crate::store::User>> {
                let row: Option<(i64, String, String, i64)> = sqlx::query_as(
                    "SELECT id, login_id, display_name, created_at FROM users WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id, login_id, display_name, created_at)| crate::store::User {
                    id: crate::ids::UserId(id),
                    login_id,
                    display_name,
                    created_at,
                }))
            }

            async fn insert_user(
                &self,
                new: &crate::store::NewUser,
            ) -> crate::store::StoreResult<crate::store::User> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO users (login_id, display_name, display_name_key, password_hash, \
                     created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(&new.login_id)
                .bind(&new.display_name)
                .bind(new.display_name.to_lowercase())
                .bind(&new.password_hash)
                .bind(new.now)
                .fetch_one(&self.pool)
                .await?;
                Ok(crate::store::User {
                    id: crate::ids::UserId(id),
                    login_id: new.login_id.clone(),
                    display_name: new.display_name.clone(),
                    created_at: new.now,
                })
            }

            async fn fetch_credentials(
                &self,
                login_id: &str,
            ) -> crate::store::StoreResult<Option<(crate::store::User, String)>> {
                let row: Option<(i64, String, String, i64, String)> = sqlx::query_as(
                    "SELECT id, login_id, display_name, created_at, password_hash FROM users \
                     WHERE login_id = $1",
                )
                .bind(login_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id, login_id, display_name, created_at, hash)| {
                    let user = crate::store::User {
                        id: crate::ids::UserId(id),
                        login_id,
                        display_name,
                        created_at,
                    };
                    (user, hash)
                }))
            }

            async fn insert_session(
                &self,
                new: &crate::store::NewSession,
            ) -> crate::store::StoreResult<crate::ids::SessionId> {
                let mut tx = self.begin_write().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, \
                     expires_at, user_agent, ip) VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
                )
                .bind(new.user_id.0)
                .bind(&new.token_hash)
                .bind(new.now)
                .bind(new.expires_at)
                .bind(&new.user_agent)
                .bind(&new.ip)
                .fetch_one(&mut *tx)
                .await?;
                // A session is a successful login: remember where from.
                if let Some(ip) = &new.ip {
                    sqlx::query(
                        "INSERT INTO login_addresses (user_id, ip, last_login_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (user_id, ip) DO UPDATE SET last_login_at = excluded.last_login_at",
                    )
                    .bind(new.user_id.0)
                    .bind(ip)
                    .bind(new.now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(crate::ids::SessionId(id))
            }

            async fn fetch_session(
                &self,
                token_hash: &[u8],
            ) -> crate::store::StoreResult<Option<crate::store::SessionRecord>> {
                let row: Option<(i64, i64, String, String, i64, i64, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT s.id, u.id, u.login_id, u.display_name, u.created_at, s.created_at, s.last_seen_at, \
                     s.expires_at, s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id, user_id, login_id, display_name, user_created, created_at, last_seen_at, expires_at, revoked_at)| {
                    crate::store::SessionRecord {
                        id: crate::ids::SessionId(id),
                        user: crate::store::User {
                            id: crate::ids::UserId(user_id),
                            login_id,
                            display_name,
                            created_at: user_created,
                        },
                        created_at,
                        last_seen_at,
                        expires_at,
                        revoked_at,
                    }
                }))
            }

            async fn update_session_seen(
                &self,
                id: crate::ids::SessionId,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<()> {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1")
                    .bind(now)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn update_session_revoked(
                &self,
                id: crate::ids::SessionId,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id.0)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_dead_sessions(
                &self,
                idle_before: crate::store::Millis,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<u64> {
                let r = sqlx::query(
                    "DELETE FROM sessions WHERE revoked_at IS NOT NULL OR last_seen_at < $1 \
                     OR expires_at < $2",
                )
                .bind(idle_before)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            /// Raises the fence to `fence.token` unless a newer token holds it; in a write
            /// transaction this also locks the fence row until commit, so a new owner's raise
            /// waits for (and then sees) this write.
            async fn check_fence(
                tx: &mut sqlx::Transaction<'_, $db>,
                fence: &crate::store::Fence,
            ) -> crate::store::StoreResult<()> {
                let r = sqlx::query(
                    "INSERT INTO actor_fences (actor_key, token) VALUES ($1, $2) \
                     ON CONFLICT (actor_key) DO UPDATE SET token = excluded.token \
                     WHERE actor_fences.token <= excluded.token",
                )
                .bind(&fence.key)
                .bind(fence.token)
                .execute(&mut **tx)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(crate::store::StoreError::Rule(crate::store::Rule::Fenced));
                }
                Ok(())
            }

            async fn apply_writes(
                tx: &mut sqlx::Transaction<'_, $db>,
                writes: &[crate::store::DurableWrite],
            ) -> crate::store::StoreResult<()> {
                for w in writes {
                    match w {
                        crate::store::DurableWrite::UserPref { user_id, key, value, at } => {
                            // A new key past the cap is refused; changing a kept one is not.
                            let (others,): (i64,) = sqlx::query_as(
                                "SELECT COUNT(*) FROM user_prefs WHERE user_id = $1 AND pref_key <> $2",
                            )
                            .bind(user_id.0)
                            .bind(key)
                            .fetch_one(&mut **tx)
                            .await?;
                            if others >= crate::store::MAX_PREFS {
                                return Err(crate::store::StoreError::Rule(crate::store::Rule::PrefLimit));
                            }
                            sqlx::query(
                                "INSERT INTO user_prefs (user_id, pref_key, pref_value, updated_at) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, pref_key) DO UPDATE \
                                 SET pref_value = excluded.pref_value, updated_at = excluded.updated_at",
                            )
                            .bind(user_id.0)
                            .bind(key)
                            .bind(value)
                            .bind(*at)
                            .execute(&mut **tx)
                            .await?;
                        }
                        crate::store::DurableWrite::ChatMessages { room_id, messages, fence } => {
                            if let Some(f) = fence {
                                Self::check_fence(tx, f).await?;
                            }
                            // One statement for the whole batch: each statement is a round trip
                            // to the database (for SQLite, to its worker thread).
                            for chunk in messages.chunks(crate::store::sql::ROWS_PER_INSERT) {
                                let mut qb = sqlx::QueryBuilder::<$db>::new(
                                    "INSERT INTO chat_messages (room_id, seq, client_id, author_id, body, mentions, created_at) ",
                                );
                                qb.push_values(chunk, |mut b, m| {
                                    let mentions = serde_json::to_string(&m.mentions).unwrap_or_else(|_| "[]".into());
                                    b.push_bind(room_id.0)
                                        .push_bind(m.seq)
                                        .push_bind(m.client_id.clone())
                                        .push_bind(m.author_id.0)
                                        .push_bind(m.body.clone())
                                        .push_bind(mentions)
                                        .push_bind(m.at);
                                });
                                qb.build().execute(&mut **tx).await?;
                            }
                        }
                        crate::store::DurableWrite::ChatEdit { room_id, seq, body, at } => {
                            sqlx::query("UPDATE chat_messages SET body = $1, edited_at = $2 WHERE room_id = $3 AND seq = $4")
                                .bind(body)
                                .bind(*at)
                                .bind(room_id.0)
                                .bind(*seq)
                                .execute(&mut **tx)
                                .await?;
                        }
                        crate::store::DurableWrite::ChatDelete { room_id, seq, at } => {
                            sqlx::query(
                                "UPDATE chat_messages SET body = '', deleted_at = $1 WHERE room_id = $2 AND seq = $3",
                            )
                            .bind(*at)
                            .bind(room_id.0)
                            .bind(*seq)
                            .execute(&mut **tx)
                            .await?;
                        }
                        crate::store::DurableWrite::ChatReaction { room_id, seq, user_id, emoji, on } => {
                            let q = if *on {
                                "INSERT INTO chat_reactions (room_id, seq, user_id, emoji) VALUES ($1, $2, $3, $4) \
                                 ON CONFLICT (room_id, seq, user_id, emoji) DO NOTHING"
                            } else {
                                "DELETE FROM chat_reactions WHERE room_id = $1 AND seq = $2 AND user_id = $3 AND emoji = $4"
                            };
                            sqlx::query(q)
                                .bind(room_id.0)
                                .bind(*seq)
                                .bind(user_id.0)
                                .bind(emoji)
                                .execute(&mut **tx)
                                .await?;
                        }
                        crate::store::DurableWrite::DirectMessages { pair, messages, fence } => {
                            if let Some(f) = fence {
                                Self::check_fence(tx, f).await?;
                            }
                            for chunk in messages.chunks(crate::store::sql::ROWS_PER_INSERT) {
                                let mut qb = sqlx::QueryBuilder::<$db>::new(
                                    "INSERT INTO direct_messages (user_a, user_b, seq, client_id, sender_id, body, created_at) ",
                                );
                                qb.push_values(chunk, |mut b, m| {
                                    b.push_bind(pair.0.0)
                                        .push_bind(pair.1.0)
                                        .push_bind(m.seq)
                                        .push_bind(m.client_id.clone())
                                        .push_bind(m.sender_id.0)
                                        .push_bind(m.body.clone())
                                        .push_bind(m.at);
                                });
                                qb.build().execute(&mut **tx).await?;
                            }
                        }
                        crate::store::DurableWrite::DirectRead { pair, reader, seq } => {
                            sqlx::query(
                                "INSERT INTO direct_read_markers (user_a, user_b, reader_id, read_seq) VALUES ($1, $2, $3, $4) \
                                 ON CONFLICT (user_a, user_b, reader_id) DO UPDATE SET read_seq = \
                                 CASE WHEN excluded.read_seq > direct_read_markers.read_seq THEN excluded.read_seq \
                                 ELSE direct_read_markers.read_seq END",
                            )
                            .bind(pair.0.0)
                            .bind(pair.1.0)
                            .bind(reader.0)
                            .bind(*seq)
                            .execute(&mut **tx)
                            .await?;
                        }
                        crate::store::DurableWrite::ChatRead { room_id, user_id, seq } => {
                            sqlx::query(
                                "INSERT INTO chat_read_markers (room_id, user_id, read_seq) VALUES ($1, $2, $3) \
                                 ON CONFLICT (room_id, user_id) DO UPDATE SET read_seq = \
                                 CASE WHEN excluded.read_seq > chat_read_markers.read_seq THEN excluded.read_seq \
                                 ELSE chat_read_markers.read_seq END",
                            )
                            .bind(room_id.0)
                            .bind(user_id.0)
                            .bind(*seq)
                            .execute(&mut **tx)
                            .await?;
                        }
                    }
                }
                Ok(())
            }

            async fn commit_writes(
                &self,
                writes: &[crate::store::DurableWrite],
            ) -> crate::store::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::apply_writes(&mut tx, writes).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn fetch_prefs(
                &self,
                user_id: crate::ids::UserId,
            ) -> crate::store::StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT pref_key, pref_value FROM user_prefs WHERE user_id = $1 ORDER BY pref_key",
                )
                .bind(user_id.0)
                .fetch_all(&self.pool)
                .await?)
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $store {
            fn kind(&self) -> crate::config::DbKind {
                Self::KIND
            }
            async fn migrate(&self) -> crate::store::StoreResult<()> {
                Self::MIGRATOR.run(&self.pool).await?;
                Ok(())
            }
            async fn ping(&self) -> crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
            async fn close(&self) {
                self.pool.close().await;
            }
            async fn create_user(
                &self,
                new: &crate::store::NewUser,
            ) -> crate::store::StoreResult<crate::store::User> {
                self.insert_user(new).await
            }
            async fn user(
                &self,
                id: crate::ids::UserId,
            ) -> crate::store::StoreResult<Option<crate::store::User>> {
                self.fetch_user(id).await
            }
            async fn user_credentials(
                &self,
                login_id: &str,
            ) -> crate::store::StoreResult<Option<(crate::store::User, String)>> {
                self.fetch_credentials(login_id).await
            }
            async fn create_session(
                &self,
                new: &crate::store::NewSession,
            ) -> crate::store::StoreResult<crate::ids::SessionId> {
                self.insert_session(new).await
            }
            async fn session_by_token_hash(
                &self,
                token_hash: &[u8],
            ) -> crate::store::StoreResult<Option<crate::store::SessionRecord>> {
                self.fetch_session(token_hash).await
            }
            async fn touch_session(
                &self,
                id: crate::ids::SessionId,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<()> {
                self.update_session_seen(id, now).await
            }
            async fn revoke_session(
                &self,
                id: crate::ids::SessionId,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<bool> {
                self.update_session_revoked(id, now).await
            }
            async fn purge_sessions(
                &self,
                idle_before: crate::store::Millis,
                now: crate::store::Millis,
            ) -> crate::store::StoreResult<u64> {
                // Addresses not used for a login within the idle period are forgotten too.
                sqlx::query("DELETE FROM login_addresses WHERE last_login_at < $1")
                    .bind(idle_before)
                    .execute(&self.pool)
                    .await?;
                self.delete_dead_sessions(idle_before, now).await
            }
            async fn logged_in_from(
                &self,
                login_id: &str,
                ip: &str,
                since: crate::store::Millis,
            ) -> crate::store::StoreResult<bool> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM login_addresses a JOIN users u ON u.id = a.user_id \
                     WHERE u.login_id = $1 AND a.ip = $2 AND a.last_login_at >= $3",
                )
                .bind(login_id)
                .bind(ip)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }
            async fn commit_batch(
                &self,
                writes: &[crate::store::DurableWrite],
            ) -> crate::store::StoreResult<()> {
                self.commit_writes(writes).await
            }
            async fn raise_fence(
                &self,
                fence: &crate::store::Fence,
            ) -> crate::store::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::check_fence(&mut tx, fence).await?;
                tx.commit().await?;
                Ok(())
            }
            async fn user_prefs(
                &self,
                user_id: crate::ids::UserId,
            ) -> crate::store::StoreResult<Vec<(String, String)>> {
                self.fetch_prefs(user_id).await
            }
            async fn schema(&self) -> crate::store::StoreResult<Vec<(String, String)>> {
                let mut cols: Vec<(String, String)> =
                    sqlx::query_as(Self::SCHEMA_SQL).fetch_all(&self.pool).await?;
                cols.sort();
                Ok(cols)
            }
        }
    };
}

pub(crate) use shared_store_impl;
