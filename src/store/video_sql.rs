//! The video queries both dialects share (see `sql.rs` for why one macro serves both).

macro_rules! video_store_impl {
    ($store:ty, $db:ty) => {
        mod video_impl {
            use super::*;
            use crate::ids::StudyId;
            use crate::store::video::VideoStore;
            use crate::store::{Millis, StoreResult};

            #[async_trait::async_trait]
            impl VideoStore for $store {
                async fn video_moderation(&self, study: StudyId) -> StoreResult<Option<(String, Millis)>> {
                    let row: Option<(String, i64)> =
                        sqlx::query_as("SELECT state, updated_at FROM video_moderation WHERE study_id = $1")
                            .bind(study.0)
                            .fetch_optional(&self.pool)
                            .await?;
                    Ok(row)
                }

                async fn set_video_moderation(&self, study: StudyId, state: Option<&str>, now: Millis) -> StoreResult<()> {
                    match state {
                        Some(s) => {
                            sqlx::query(
                                "INSERT INTO video_moderation (study_id, state, updated_at) VALUES ($1, $2, $3) \
                                 ON CONFLICT (study_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                            )
                            .bind(study.0)
                            .bind(s)
                            .bind(now)
                            .execute(&self.pool)
                            .await?;
                        }
                        None => {
                            sqlx::query("DELETE FROM video_moderation WHERE study_id = $1")
                                .bind(study.0)
                                .execute(&self.pool)
                                .await?;
                        }
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(super) use video_store_impl;
