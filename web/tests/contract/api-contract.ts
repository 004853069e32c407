// The web client's API types checked against the server's OpenAPI document: every answer the
// server documents must be assignable to the type the client reads it as. `api.gen.ts` is
// generated from `studyon openapi` by openapi-typescript when the suite runs (ops/test.sh);
// `tsc` fails this file if the two drift apart.
import type * as api from '../../src/api';
import type { components } from './api.gen';

type S = components['schemas'];
/** True when a value of the server's type `From` can be used as the client's `To`. */
type Fits<From, To> = [From] extends [To] ? true : false;
/** Fails to compile unless given `true`. */
type Check<T extends true> = T;

export type Checks = [
  Check<Fits<S['User'], api.User>>,
  Check<Fits<S['UserEnvelope'], { user: api.User }>>,
  Check<Fits<S['StudySummary'], api.StudySummary>>,
  Check<Fits<S['StudyDetail'], api.StudyDetail>>,
  Check<Fits<S['StudyEnvelope'], { study: api.StudyDetail }>>,
  Check<Fits<S['Page_StudySummary'], api.Page<api.StudySummary>>>,
  Check<Fits<S['Review'], api.Review>>,
  Check<Fits<S['StudyRef'], api.StudyRef>>,
  Check<Fits<S['Member'], api.Member>>,
  Check<Fits<S['Profile'], api.Profile>>,
  Check<Fits<S['ApplicationWithApplicant'], api.Application>>,
  Check<Fits<S['MyApplication'], api.MyApplication>>,
  Check<Fits<S['Notification'], api.AppNotification>>,
  Check<Fits<S['Page_Notification'], api.Page<api.AppNotification>>>,
  Check<Fits<S['Room'], api.ChatRoom>>,
  Check<Fits<S['Author'], api.Author>>,
  Check<Fits<S['ChatMessage'], api.ChatMessage>>,
  Check<Fits<S['Task'], api.Task>>,
  Check<Fits<S['Items_MyTask']['items'][number], api.MyTask>>,
  Check<Fits<S['StoredFile'], api.FileInfo>>,
  Check<Fits<S['PostSummary'], api.PostSummary>>,
  Check<Fits<S['Page_PostSummary'], api.Page<api.PostSummary>>>,
  Check<Fits<S['Post'], api.Post>>,
  Check<Fits<S['Limits'], api.Limits>>,
];
