// Every user-visible string of the client lives in this file, in Korean and
// English. Components read them through `useI18n()` (or `t()` outside
// components). API error codes map to `error.<code>` keys; see
// `errorMessage()` for the fallback order.
import { useEffect, useState } from 'preact/hooks';

export type Lang = 'ko' | 'en';
export const LANGS: readonly Lang[] = ['ko', 'en'];

const en = {
  'app.name': 'StudyOn',
  'app.tagline': 'Study together, in real time.',
  'app.loading': 'Loading…',
  'app.skipToContent': 'Skip to content',

  'lang.toggle': '한국어',
  'lang.toggleLabel': 'Switch language to Korean',
  'lang.current': 'English',

  'nav.login': 'Log in',
  'nav.signup': 'Sign up',

  'field.login_id': 'Login ID',
  'field.display_name': 'Display name',
  'field.password': 'Password',
  'hint.login_id': '3–32 characters: lowercase letters, digits and _',
  'hint.display_name': '1–40 characters. Korean is fine.',
  'hint.password': 'At least 10 characters.',

  'signup.title': 'Create your account',
  'signup.submit': 'Sign up',
  'signup.submitting': 'Signing up…',
  'signup.haveAccount': 'Already have an account?',
  'signup.toLogin': 'Log in',

  'login.title': 'Log in',
  'login.submit': 'Log in',
  'login.submitting': 'Logging in…',
  'login.noAccount': 'New to StudyOn?',
  'login.toSignup': 'Create an account',

  'home.title': 'Home',
  'home.welcome': 'welcome, ',
  'home.welcomeEnd': '',
  'home.signedInAs': 'Signed in as {login}',
  'home.logout': 'Log out',
  'home.loggingOut': 'Logging out…',
  'home.connection': 'Live connection',
  'home.empty': 'Your study groups will show up here.',

  'conn.connecting': 'Connecting…',
  'conn.connected': 'Connected',
  'conn.reconnecting': 'Reconnecting…',
  'conn.offline': 'Offline',

  'notice.revoked': 'You have been logged out. Please log in again.',
  'notice.loggedOut': 'You have been logged out.',

  'notFound.title': 'Page not found',
  'notFound.body': 'There is nothing at this address.',
  'notFound.home': 'Go to the home page',

  'error.validation_failed': 'Please check your input.',
  'error.validation_failed.login_id':
    'Login ID must be 3–32 characters of lowercase letters, digits and _.',
  'error.validation_failed.display_name': 'Display name must be 1–40 characters.',
  'error.validation_failed.password': 'Password must be 10–256 bytes long.',
  'error.login_id_taken': 'That login ID is already taken.',
  'error.display_name_taken': 'That display name is already taken.',
  'error.invalid_credentials': 'Wrong login ID or password.',
  'error.rate_limited': 'Too many attempts. Please try again later.',
  'error.rate_limited.retry': 'Too many attempts. Please try again in {seconds} seconds.',
  'error.unauthenticated': 'Please log in.',
  'error.network': 'Cannot reach the server. Check your connection and try again.',
  'error.unknown': 'Something went wrong. Please try again.',
  'error.required': '{field} is required.',
  'error.retry': 'Try again',

  'nav.main': 'Main',
  'nav.studies': 'Studies',
  'nav.myStudies': 'My studies',
  'nav.notificationsPage': 'Notifications',
  'nav.notifications': 'Notifications',
  'nav.unread': 'unread',

  'status.recruiting': 'Recruiting',
  'status.in_progress': 'In progress',
  'status.completed': 'Completed',

  'appStatus.pending': 'Pending',
  'appStatus.accepted': 'Accepted',
  'appStatus.rejected': 'Rejected',
  'appStatus.withdrawn': 'Withdrawn',

  'studies.title': 'Studies',
  'studies.new': 'New study',
  'studies.search': 'Search titles',
  'studies.status': 'Status',
  'studies.statusAll': 'All',
  'studies.sort': 'Sort by',
  'studies.sortNewest': 'Newest',
  'studies.sortDeadline': 'Recruitment deadline',
  'studies.tagFilter': 'Filter by tags',
  'studies.tagHint': 'Press Enter or type a comma to add a tag. Studies must have every tag.',
  'studies.results': 'Results',
  'studies.empty': 'No studies match.',
  'studies.loadMore': 'Load more',
  'tags.remove': 'Remove tag {tag}',

  'study.title': 'Study',
  'study.tags': 'Tags',
  'study.members': 'Members',
  'study.deadline': 'Applications close',
  'study.leader': 'Leader',
  'study.recruitPeriod': 'Recruiting',
  'study.studyPeriod': 'Study period',
  'study.description': 'Description',
  'study.bookmark': 'Bookmark',
  'study.edit': 'Edit study',
  'study.notFound': 'This study does not exist or you cannot see it.',
  'study.backToList': 'Back to the study list',
  'study.removedNotice': 'You were removed from this study.',

  'field.title': 'Title',
  'field.description': 'Description',
  'field.tags': 'Tags',
  'field.capacity': 'Capacity',
  'field.recruit_opens_on': 'Recruitment opens',
  'field.recruit_closes_on': 'Recruitment closes',
  'field.starts_on': 'Study starts',
  'field.ends_on': 'Study ends',
  'hint.description': 'Markdown is supported.',
  'hint.tags': 'Press Enter or type a comma after each tag.',
  'hint.capacity': 'Members including the leader.',

  'studyForm.createTitle': 'New study',
  'studyForm.editTitle': 'Edit study',
  'studyForm.create': 'Create study',
  'studyForm.save': 'Save changes',
  'studyForm.saving': 'Saving…',
  'studyForm.cancel': 'Cancel',

  'apply.title': 'Join this study',
  'apply.message': 'Message to the leader',
  'apply.count': '{count}/{max} characters',
  'apply.submit': 'Apply',
  'apply.sent': 'Your application was sent.',
  'apply.myState': 'Your application: {status}',
  'apply.withdraw': 'Withdraw application',
  'apply.withdrawn': 'Your application was withdrawn.',
  'apply.notRecruiting': 'This study is not recruiting.',

  'leader.status': 'Study status',
  'leader.statusFinal': 'This study is completed; its status cannot change any more.',
  'leader.setStatus': 'Mark as {status}',
  'leader.applications': 'Pending applications ({count})',
  'leader.noApplications': 'No pending applications.',
  'leader.decided': 'Decided applications ({count})',
  'leader.noMessage': 'No message.',
  'leader.applicantReviews': 'Reviews from other studies',
  'leader.completedStudies': 'Completed studies',
  'leader.reason': 'Reason (optional, sent when rejecting)',
  'leader.accept': 'Accept',
  'leader.reject': 'Reject',
  'leader.accepted': '{name} joined the study.',
  'leader.rejected': 'The application of {name} was rejected.',

  'members.title': 'Members ({count})',
  'members.leader': 'Leader',
  'members.leave': 'Leave study',
  'members.leaveConfirm': 'Leave this study?',
  'members.leaveYes': 'Yes, leave',
  'members.cancel': 'Cancel',
  'members.left': 'You left the study.',
  'members.ban': 'Ban from re-applying',
  'members.remove': 'Remove',
  'members.removed': '{name} was removed.',
  'members.makeLeader': 'Make leader',
  'members.transferred': '{name} is now the leader.',

  'review.write': 'Review a member',
  'review.reviewee': 'Member',
  'review.rating': 'Rating',
  'review.stars': '{rating} out of 5',
  'review.body': 'Review',
  'review.submit': 'Post review',
  'review.update': 'Update my review',
  'review.willUpdate': 'You already reviewed this member here; submitting again updates that review.',
  'review.saved': 'Your review was saved.',
  'review.none': 'No reviews yet',
  'review.summary': '★ {average} ({count} reviews)',
  'review.summaryOne': '★ {average} (1 review)',

  'my.title': 'My studies',
  'my.leading': 'Studies I lead',
  'my.joined': 'Studies I joined',
  'my.applications': 'My applications',
  'my.bookmarks': 'Bookmarked studies',
  'my.none': 'Nothing here yet.',
  'my.reason': 'Reason: {reason}',

  'profile.title': 'Profile',
  'profile.reviews': 'Reviews',
  'profile.completed': 'Completed studies',
  'profile.noCompleted': 'No completed studies yet.',
  'profile.notFound': 'This user does not exist.',

  'notif.title': 'Notifications',
  'notif.recent': 'Recent notifications',
  'notif.seeAll': 'See all notifications',
  'notif.empty': 'No notifications.',
  'notif.unread': 'Unread:',
  'notif.markRead': 'Mark read',
  'notif.markAll': 'Mark all read',
  'notif.loadMore': 'Load more',
  'notif.application_received': '{name} applied to “{study}”.',
  'notif.application_accepted': 'You were accepted into “{study}”.',
  'notif.application_rejected': 'Your application to “{study}” was rejected.',
  'notif.application_rejected_reason': 'Your application to “{study}” was rejected: {reason}',
  'notif.study_status_changed': '“{study}” is now {status}.',
  'notif.removed': 'You were removed from “{study}”.',
  'notif.removed_banned': 'You were removed from “{study}” and cannot apply again.',
  'notif.review_received': '{name} reviewed you ({rating}/5) in “{study}”.',
  'notif.unknown': 'You have a new notification.',
  'toast.dismiss': 'Dismiss',

  'error.validation_failed.title': 'Enter a title (up to 100 characters).',
  'error.validation_failed.description': 'The description is too long.',
  'error.validation_failed.tags': 'Check the tags (too many, or a tag is too long).',
  'error.validation_failed.capacity': 'Capacity must be 2–100 members, including the leader.',
  'error.validation_failed.recruit_opens_on': 'Enter a valid recruitment start date.',
  'error.validation_failed.recruit_closes_on': 'Recruitment must close on or after the day it opens, and before the study starts.',
  'error.validation_failed.starts_on': 'Enter a valid start date.',
  'error.validation_failed.ends_on': 'The study must end after it starts.',
  'error.validation_failed.message': 'The message can be at most 1000 characters.',
  'error.validation_failed.rating': 'Choose a rating from 1 to 5.',
  'error.validation_failed.body': 'A review can be at most 1000 characters.',
  'error.validation_failed.reason': 'The reason can be at most 500 characters.',
  'error.validation_failed.q': 'The search text can be at most 100 characters.',
  'error.validation_failed.tag': 'Filter by at most 5 tags.',
  'error.leader_only': 'Only the leader can edit this study.',
  'error.not_found': 'Not found.',
  'error.forbidden': 'You are not allowed to do that.',
  'error.invalid_status_transition': 'The study cannot change to that status.',
  'error.not_recruiting': 'This study is not recruiting.',
  'error.study_full': 'This study is full.',
  'error.already_member': 'You are already a member of this study.',
  'error.application_exists': 'You already have a pending application for this study.',
  'error.banned': 'You cannot apply to this study.',
  'error.application_not_pending': 'This application was already decided or withdrawn.',
  'error.leader_must_transfer': 'Make another member the leader before you leave.',
  'error.review_exists': 'You already reviewed this member for this study.',
  'nav.messages': 'Messages',
  'dm.title': 'Messages',
  'dm.empty': 'No conversations yet. Use “Message” next to a study member to start one.',
  'dm.you': 'You',
  'dm.back': 'All conversations',
  'dm.notFound': 'You can only message people who share a study with you.',
  'dm.with': 'Conversation with {name}',
  'dm.noMessages': 'No messages yet.',
  'dm.read': 'Read',
  'dm.composer': 'Message to {name}',
  'dm.toast': 'New message from {name}: {body}',
  'dm.openToast': 'Open',
  'dm.unreadTotal': '{count} unread messages',
  'dm.message': 'Message',
  'chat.title': 'Chat',
  'chat.rooms': 'Chat rooms',
  'chat.noRooms': 'No chat rooms yet. Open one below.',
  'chat.category.general': 'General',
  'chat.category.qna': 'Q&A',
  'chat.category.resources': 'Resources',
  'chat.category.off_topic': 'Off-topic',
  'chat.unread': '{count} unread',
  'chat.closedBadge': 'closed',
  'chat.newRoom': 'Open a new room',
  'chat.roomName': 'Room name',
  'chat.roomCategory': 'Category',
  'chat.create': 'Create room',
  'chat.roomLimitHint': 'Up to 3 rooms can be open at a time.',
  'chat.closeRoom': 'Close room',
  'chat.closeConfirm': 'Close this room for everyone? Its history stays readable.',
  'chat.closeYes': 'Yes, close it',
  'chat.cancel': 'Cancel',
  'chat.closedNotice': 'This room was closed by the leader. You can still read it, but not send.',
  'chat.loadOlder': 'Load older messages',
  'chat.empty': 'No messages yet. Say hello!',
  'chat.messages': 'Messages in {room}',
  'chat.composer': 'Message',
  'chat.send': 'Send',
  'chat.pending': 'Sending…',
  'chat.failed': 'Not sent: {reason}',
  'chat.retry': 'Retry',
  'chat.discard': 'Discard',
  'chat.edit': 'Edit',
  'chat.editLabel': 'Edit message',
  'chat.delete': 'Delete',
  'chat.save': 'Save',
  'chat.edited': '(edited)',
  'chat.deleted': 'This message was deleted.',
  'chat.react': 'Add a reaction',
  'chat.reactWith': 'React with {emoji}',
  'chat.reactionCount': '{emoji} {count}, click to toggle yours',
  'chat.typingOne': '{name} is typing…',
  'chat.typingTwo': '{a} and {b} are typing…',
  'chat.typingMany': 'Several people are typing…',
  'chat.presence': 'In this room now',
  'chat.removedNotice': 'You are no longer a member of this study, so its chat was closed.',
  'chat.notConnected': 'Waiting for the live connection…',
  'notif.chat_mention': '{name} mentioned you: “{excerpt}”',
  'error.room_limit': 'A study can have at most 3 open rooms. Close one first.',
  'error.room_closed': 'This room is closed.',
  'error.message_too_long': 'A message can be at most 4000 characters.',
  'error.validation_failed.name': 'The room name must be 1–40 characters.',
  'error.validation_failed.category': 'Choose a category.',
} as const;

export type MessageKey = keyof typeof en;
type Dict = Record<MessageKey, string>;

const ko: Dict = {
  'app.name': 'StudyOn',
  'app.tagline': '함께, 실시간으로 공부해요.',
  'app.loading': '불러오는 중…',
  'app.skipToContent': '본문으로 건너뛰기',

  'lang.toggle': 'English',
  'lang.toggleLabel': '언어를 영어로 바꾸기',
  'lang.current': '한국어',

  'nav.login': '로그인',
  'nav.signup': '회원가입',

  'field.login_id': '아이디',
  'field.display_name': '표시 이름',
  'field.password': '비밀번호',
  'hint.login_id': '3–32자: 영문 소문자, 숫자, _',
  'hint.display_name': '1–40자. 한글도 됩니다.',
  'hint.password': '10자 이상.',

  'signup.title': '계정 만들기',
  'signup.submit': '가입하기',
  'signup.submitting': '가입하는 중…',
  'signup.haveAccount': '이미 계정이 있나요?',
  'signup.toLogin': '로그인',

  'login.title': '로그인',
  'login.submit': '로그인',
  'login.submitting': '로그인하는 중…',
  'login.noAccount': 'StudyOn이 처음인가요?',
  'login.toSignup': '계정 만들기',

  'home.title': '홈',
  'home.welcome': '',
  'home.welcomeEnd': '님, 환영합니다',
  'home.signedInAs': '{login} 계정으로 로그인됨',
  'home.logout': '로그아웃',
  'home.loggingOut': '로그아웃하는 중…',
  'home.connection': '실시간 연결',
  'home.empty': '스터디 그룹이 여기에 표시됩니다.',

  'conn.connecting': '연결 중…',
  'conn.connected': '연결됨',
  'conn.reconnecting': '다시 연결하는 중…',
  'conn.offline': '오프라인',

  'notice.revoked': '로그아웃되었습니다. 다시 로그인해 주세요.',
  'notice.loggedOut': '로그아웃했습니다.',

  'notFound.title': '페이지를 찾을 수 없습니다',
  'notFound.body': '이 주소에는 아무것도 없습니다.',
  'notFound.home': '홈으로 가기',

  'error.validation_failed': '입력한 내용을 확인해 주세요.',
  'error.validation_failed.login_id': '아이디는 영문 소문자, 숫자, _ 로 3–32자여야 합니다.',
  'error.validation_failed.display_name': '표시 이름은 1–40자여야 합니다.',
  'error.validation_failed.password': '비밀번호는 10–256바이트여야 합니다.',
  'error.login_id_taken': '이미 사용 중인 아이디입니다.',
  'error.display_name_taken': '이미 사용 중인 표시 이름입니다.',
  'error.invalid_credentials': '아이디 또는 비밀번호가 올바르지 않습니다.',
  'error.rate_limited': '시도가 너무 많습니다. 잠시 후 다시 시도해 주세요.',
  'error.rate_limited.retry': '시도가 너무 많습니다. {seconds}초 후에 다시 시도해 주세요.',
  'error.unauthenticated': '로그인해 주세요.',
  'error.network': '서버에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
  'error.unknown': '문제가 생겼습니다. 다시 시도해 주세요.',
  'error.required': '{field}을(를) 입력해 주세요.',
  'error.retry': '다시 시도',

  'nav.main': '주 메뉴',
  'nav.studies': '스터디',
  'nav.myStudies': '내 스터디',
  'nav.notificationsPage': '알림',
  'nav.notifications': '알림',
  'nav.unread': '읽지 않음',

  'status.recruiting': '모집 중',
  'status.in_progress': '진행 중',
  'status.completed': '완료',

  'appStatus.pending': '대기 중',
  'appStatus.accepted': '수락됨',
  'appStatus.rejected': '거절됨',
  'appStatus.withdrawn': '취소됨',

  'studies.title': '스터디',
  'studies.new': '새 스터디',
  'studies.search': '제목 검색',
  'studies.status': '상태',
  'studies.statusAll': '전체',
  'studies.sort': '정렬',
  'studies.sortNewest': '최신순',
  'studies.sortDeadline': '모집 마감순',
  'studies.tagFilter': '태그로 거르기',
  'studies.tagHint': 'Enter 또는 쉼표로 태그를 추가하세요. 모든 태그가 있는 스터디만 보입니다.',
  'studies.results': '검색 결과',
  'studies.empty': '조건에 맞는 스터디가 없습니다.',
  'studies.loadMore': '더 보기',
  'tags.remove': '{tag} 태그 지우기',

  'study.title': '스터디',
  'study.tags': '태그',
  'study.members': '인원',
  'study.deadline': '모집 마감',
  'study.leader': '스터디장',
  'study.recruitPeriod': '모집 기간',
  'study.studyPeriod': '진행 기간',
  'study.description': '소개',
  'study.bookmark': '북마크',
  'study.edit': '스터디 수정',
  'study.notFound': '없는 스터디이거나 볼 수 없는 스터디입니다.',
  'study.backToList': '스터디 목록으로',
  'study.removedNotice': '이 스터디에서 내보내졌습니다.',

  'field.title': '제목',
  'field.description': '소개',
  'field.tags': '태그',
  'field.capacity': '정원',
  'field.recruit_opens_on': '모집 시작일',
  'field.recruit_closes_on': '모집 마감일',
  'field.starts_on': '스터디 시작일',
  'field.ends_on': '스터디 종료일',
  'hint.description': '마크다운을 쓸 수 있습니다.',
  'hint.tags': '태그마다 Enter를 누르거나 쉼표를 입력하세요.',
  'hint.capacity': '스터디장을 포함한 인원입니다.',

  'studyForm.createTitle': '새 스터디',
  'studyForm.editTitle': '스터디 수정',
  'studyForm.create': '스터디 만들기',
  'studyForm.save': '저장하기',
  'studyForm.saving': '저장하는 중…',
  'studyForm.cancel': '취소',

  'apply.title': '스터디 참여하기',
  'apply.message': '스터디장에게 보낼 메시지',
  'apply.count': '{count}/{max}자',
  'apply.submit': '지원하기',
  'apply.sent': '지원서를 보냈습니다.',
  'apply.myState': '내 지원 상태: {status}',
  'apply.withdraw': '지원 취소',
  'apply.withdrawn': '지원을 취소했습니다.',
  'apply.notRecruiting': '지금은 모집 중이 아닙니다.',

  'leader.status': '스터디 상태',
  'leader.statusFinal': '완료된 스터디는 상태를 더 바꿀 수 없습니다.',
  'leader.setStatus': '{status}(으)로 바꾸기',
  'leader.applications': '대기 중인 지원 ({count})',
  'leader.noApplications': '대기 중인 지원이 없습니다.',
  'leader.decided': '처리한 지원 ({count})',
  'leader.noMessage': '메시지 없음',
  'leader.applicantReviews': '다른 스터디에서 받은 리뷰',
  'leader.completedStudies': '완료한 스터디',
  'leader.reason': '사유 (선택, 거절할 때 전달됩니다)',
  'leader.accept': '수락',
  'leader.reject': '거절',
  'leader.accepted': '{name}님이 스터디에 들어왔습니다.',
  'leader.rejected': '{name}님의 지원을 거절했습니다.',

  'members.title': '멤버 ({count})',
  'members.leader': '스터디장',
  'members.leave': '스터디 나가기',
  'members.leaveConfirm': '이 스터디에서 나갈까요?',
  'members.leaveYes': '네, 나갈게요',
  'members.cancel': '취소',
  'members.left': '스터디에서 나왔습니다.',
  'members.ban': '다시 지원하지 못하게 하기',
  'members.remove': '내보내기',
  'members.removed': '{name}님을 내보냈습니다.',
  'members.makeLeader': '스터디장 넘기기',
  'members.transferred': '이제 {name}님이 스터디장입니다.',

  'review.write': '멤버 리뷰 쓰기',
  'review.reviewee': '멤버',
  'review.rating': '평점',
  'review.stars': '5점 중 {rating}점',
  'review.body': '리뷰',
  'review.submit': '리뷰 올리기',
  'review.update': '내 리뷰 고치기',
  'review.willUpdate': '이 스터디에서 이미 이 멤버를 리뷰했습니다. 다시 보내면 그 리뷰가 바뀝니다.',
  'review.saved': '리뷰를 저장했습니다.',
  'review.none': '아직 리뷰가 없습니다',
  'review.summary': '★ {average} (리뷰 {count}개)',
  'review.summaryOne': '★ {average} (리뷰 1개)',

  'my.title': '내 스터디',
  'my.leading': '내가 이끄는 스터디',
  'my.joined': '참여 중인 스터디',
  'my.applications': '내 지원',
  'my.bookmarks': '북마크한 스터디',
  'my.none': '아직 없습니다.',
  'my.reason': '사유: {reason}',

  'profile.title': '프로필',
  'profile.reviews': '받은 리뷰',
  'profile.completed': '완료한 스터디',
  'profile.noCompleted': '아직 완료한 스터디가 없습니다.',
  'profile.notFound': '없는 사용자입니다.',

  'notif.title': '알림',
  'notif.recent': '최근 알림',
  'notif.seeAll': '알림 모두 보기',
  'notif.empty': '알림이 없습니다.',
  'notif.unread': '읽지 않음:',
  'notif.markRead': '읽음으로 표시',
  'notif.markAll': '모두 읽음으로 표시',
  'notif.loadMore': '더 보기',
  'notif.application_received': '{name}님이 “{study}”에 지원했습니다.',
  'notif.application_accepted': '“{study}” 지원이 수락되었습니다.',
  'notif.application_rejected': '“{study}” 지원이 거절되었습니다.',
  'notif.application_rejected_reason': '“{study}” 지원이 거절되었습니다: {reason}',
  'notif.study_status_changed': '“{study}” 상태가 {status}(으)로 바뀌었습니다.',
  'notif.removed': '“{study}”에서 내보내졌습니다.',
  'notif.removed_banned': '“{study}”에서 내보내졌고, 다시 지원할 수 없습니다.',
  'notif.review_received': '{name}님이 “{study}”에서 리뷰를 남겼습니다 ({rating}/5).',
  'notif.unknown': '새 알림이 있습니다.',
  'toast.dismiss': '닫기',

  'error.validation_failed.title': '제목을 입력해 주세요 (100자 이하).',
  'error.validation_failed.description': '소개가 너무 깁니다.',
  'error.validation_failed.tags': '태그를 확인해 주세요 (너무 많거나 너무 긴 태그가 있습니다).',
  'error.validation_failed.capacity': '정원은 스터디장을 포함해 2–100명이어야 합니다.',
  'error.validation_failed.recruit_opens_on': '올바른 모집 시작일을 입력해 주세요.',
  'error.validation_failed.recruit_closes_on': '모집 마감일은 모집 시작일과 같거나 그 뒤이고, 스터디 시작일보다 앞이어야 합니다.',
  'error.validation_failed.starts_on': '올바른 시작일을 입력해 주세요.',
  'error.validation_failed.ends_on': '종료일은 시작일보다 뒤여야 합니다.',
  'error.validation_failed.message': '메시지는 1000자까지 쓸 수 있습니다.',
  'error.validation_failed.rating': '평점을 1–5 중에서 골라 주세요.',
  'error.validation_failed.body': '리뷰는 1000자까지 쓸 수 있습니다.',
  'error.validation_failed.reason': '사유는 500자까지 쓸 수 있습니다.',
  'error.validation_failed.q': '검색어는 100자까지 쓸 수 있습니다.',
  'error.validation_failed.tag': '태그는 5개까지 거를 수 있습니다.',
  'error.leader_only': '스터디장만 이 스터디를 수정할 수 있습니다.',
  'error.not_found': '찾을 수 없습니다.',
  'error.forbidden': '그 작업을 할 권한이 없습니다.',
  'error.invalid_status_transition': '그 상태로 바꿀 수 없습니다.',
  'error.not_recruiting': '지금은 모집 중이 아닙니다.',
  'error.study_full': '정원이 찼습니다.',
  'error.already_member': '이미 이 스터디의 멤버입니다.',
  'error.application_exists': '이 스터디에 대기 중인 지원이 이미 있습니다.',
  'error.banned': '이 스터디에는 지원할 수 없습니다.',
  'error.application_not_pending': '이미 처리되었거나 취소된 지원입니다.',
  'error.leader_must_transfer': '나가기 전에 다른 멤버에게 스터디장을 넘겨 주세요.',
  'error.review_exists': '이 스터디에서 이미 이 멤버를 리뷰했습니다.',
  'nav.messages': '메시지',
  'dm.title': '메시지',
  'dm.empty': '아직 대화가 없습니다. 스터디 멤버 옆의 “메시지”로 대화를 시작해 보세요.',
  'dm.you': '나',
  'dm.back': '모든 대화',
  'dm.notFound': '같은 스터디에 있는 사람에게만 메시지를 보낼 수 있습니다.',
  'dm.with': '{name}님과의 대화',
  'dm.noMessages': '아직 메시지가 없습니다.',
  'dm.read': '읽음',
  'dm.composer': '{name}님에게 보낼 메시지',
  'dm.toast': '{name}님의 새 메시지: {body}',
  'dm.openToast': '열기',
  'dm.unreadTotal': '읽지 않은 메시지 {count}개',
  'dm.message': '메시지',
  'chat.title': '채팅',
  'chat.rooms': '채팅방',
  'chat.noRooms': '아직 채팅방이 없습니다. 아래에서 만들어 보세요.',
  'chat.category.general': '일반',
  'chat.category.qna': '질문과 답변',
  'chat.category.resources': '자료',
  'chat.category.off_topic': '잡담',
  'chat.unread': '읽지 않은 메시지 {count}개',
  'chat.closedBadge': '닫힘',
  'chat.newRoom': '새 채팅방 열기',
  'chat.roomName': '채팅방 이름',
  'chat.roomCategory': '분류',
  'chat.create': '채팅방 만들기',
  'chat.roomLimitHint': '채팅방은 한 번에 3개까지 열 수 있습니다.',
  'chat.closeRoom': '채팅방 닫기',
  'chat.closeConfirm': '모두에게 이 채팅방을 닫을까요? 지난 대화는 계속 읽을 수 있습니다.',
  'chat.closeYes': '네, 닫을게요',
  'chat.cancel': '취소',
  'chat.closedNotice': '스터디장이 닫은 채팅방입니다. 읽을 수는 있지만 보낼 수는 없습니다.',
  'chat.loadOlder': '이전 메시지 더 보기',
  'chat.empty': '아직 메시지가 없습니다. 먼저 인사해 보세요!',
  'chat.messages': '{room}의 메시지',
  'chat.composer': '메시지',
  'chat.send': '보내기',
  'chat.pending': '보내는 중…',
  'chat.failed': '보내지 못했습니다: {reason}',
  'chat.retry': '다시 보내기',
  'chat.discard': '지우기',
  'chat.edit': '고치기',
  'chat.editLabel': '메시지 고치기',
  'chat.delete': '삭제',
  'chat.save': '저장',
  'chat.edited': '(수정됨)',
  'chat.deleted': '삭제된 메시지입니다.',
  'chat.react': '반응 남기기',
  'chat.reactWith': '{emoji} 반응',
  'chat.reactionCount': '{emoji} {count}명, 눌러서 내 반응 켜고 끄기',
  'chat.typingOne': '{name}님이 입력하고 있습니다…',
  'chat.typingTwo': '{a}님과 {b}님이 입력하고 있습니다…',
  'chat.typingMany': '여러 명이 입력하고 있습니다…',
  'chat.presence': '지금 이 방에 있는 사람',
  'chat.removedNotice': '이 스터디의 멤버가 아니게 되어 채팅이 닫혔습니다.',
  'chat.notConnected': '실시간 연결을 기다리는 중…',
  'notif.chat_mention': '{name}님이 나를 언급했습니다: “{excerpt}”',
  'error.room_limit': '채팅방은 3개까지 열 수 있습니다. 먼저 하나를 닫아 주세요.',
  'error.room_closed': '닫힌 채팅방입니다.',
  'error.message_too_long': '메시지는 4000자까지 쓸 수 있습니다.',
  'error.validation_failed.name': '채팅방 이름은 1–40자여야 합니다.',
  'error.validation_failed.category': '분류를 골라 주세요.',
};

const DICTS: Record<Lang, Dict> = { en, ko };

const STORAGE_KEY = 'studyon.lang';

function detectLang(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'ko' || saved === 'en') return saved;
  } catch {
    // localStorage may be unavailable (privacy mode); fall through.
  }
  const nav = typeof navigator !== 'undefined' ? navigator.language || '' : '';
  return nav.toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

let current: Lang = detectLang();
const listeners = new Set<(lang: Lang) => void>();

export function getLang(): Lang {
  return current;
}

export function setLang(lang: Lang): void {
  if (lang === current) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not fatal: the choice just won't be remembered.
  }
  applyDocumentLang();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn: (lang: Lang) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Keeps `<html lang>` in step with the chosen language. */
export function applyDocumentLang(): void {
  if (typeof document !== 'undefined') document.documentElement.lang = current;
}

export function hasKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/** Translate `key`, replacing `{name}` placeholders from `params`. */
export function t(key: MessageKey, params?: Record<string, string | number>): string {
  let s = DICTS[current][key] ?? en[key];
  if (params) {
    for (const [k, v] of Object.entries(params)) s = s.split(`{${k}}`).join(String(v));
  }
  return s;
}

/** Re-renders the calling component when the language changes. */
export function useI18n() {
  const [lang, setState] = useState<Lang>(current);
  useEffect(() => onLangChange(setState), []);
  return { lang, t, setLang };
}

/**
 * The text to show for an API error: the localized text for its stable code
 * (and field, for validation errors), else the server's own message, else a
 * generic localized text.
 */
export function errorMessage(err: {
  code: string;
  message?: string;
  field?: string | null;
  retryAfter?: number | null;
}): string {
  if (err.code === 'required' && err.field && hasKey(`field.${err.field}`)) {
    return t('error.required', { field: t(`field.${err.field}` as MessageKey) });
  }
  if (err.code === 'rate_limited' && err.retryAfter && err.retryAfter > 0) {
    return t('error.rate_limited.retry', { seconds: err.retryAfter });
  }
  if (err.field) {
    const fieldKey = `error.${err.code}.${err.field}`;
    if (hasKey(fieldKey)) return t(fieldKey);
  }
  const key = `error.${err.code}`;
  if (hasKey(key)) return t(key);
  if (err.message) return err.message;
  return t('error.unknown');
}
