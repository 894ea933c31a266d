/**
 * The Data Portability API's resource groups, one per OAuth scope
 * (`https://www.googleapis.com/auth/dataportability.<group>`), taken from the API's discovery
 * document. Kept in this one place; the API may add groups, so callers that read groups back
 * from Google (accessType.check) keep names they do not know rather than failing.
 */
export const RESOURCE_GROUPS = [
  'businessmessaging.conversations',
  'chrome.autofill',
  'chrome.bookmarks',
  'chrome.dictionary',
  'chrome.extensions',
  'chrome.history',
  'chrome.reading_list',
  'chrome.settings',
  'discover.follows',
  'discover.likes',
  'discover.not_interested',
  'maps.aliased_places',
  'maps.commute_routes',
  'maps.commute_settings',
  'maps.ev_profile',
  'maps.factual_contributions',
  'maps.offering_contributions',
  'maps.photos_videos',
  'maps.questions_answers',
  'maps.reviews',
  'maps.starred_places',
  'myactivity.maps',
  'myactivity.myadcenter',
  'myactivity.play',
  'myactivity.search',
  'myactivity.shopping',
  'myactivity.youtube',
  'mymaps.maps',
  'order_reserve.purchases_reservations',
  'play.devices',
  'play.grouping',
  'play.installs',
  'play.library',
  'play.playpoints',
  'play.promotions',
  'play.purchases',
  'play.redemptions',
  'play.subscriptions',
  'play.usersettings',
  'saved.collections',
  'search_ugc.media.reviews_and_stars',
  'search_ugc.media.streaming_video_providers',
  'search_ugc.media.thumbs',
  'search_ugc.media.watched',
  'searchnotifications.settings',
  'searchnotifications.subscriptions',
  'shopping.addresses',
  'shopping.reviews',
  'streetview.imagery',
  'youtube.channel',
  'youtube.comments',
  'youtube.live_chat',
  'youtube.music',
  'youtube.playable',
  'youtube.posts',
  'youtube.private_playlists',
  'youtube.private_videos',
  'youtube.public_playlists',
  'youtube.public_videos',
  'youtube.shopping',
  'youtube.subscriptions',
  'youtube.unlisted_playlists',
  'youtube.unlisted_videos',
] as const;

export type ResourceGroup = (typeof RESOURCE_GROUPS)[number];

const KNOWN = new Set<string>(RESOURCE_GROUPS);

export function isKnownResourceGroup(name: string): name is ResourceGroup {
  return KNOWN.has(name);
}

export const SCOPE_PREFIX = 'https://www.googleapis.com/auth/dataportability.';

export function scopeOf(group: string): string {
  return SCOPE_PREFIX + group;
}

/** Resource groups named by the `dataportability.*` scopes in an OAuth `scope` string. */
export function groupsInScopes(scope: string): string[] {
  return scope
    .split(/\s+/)
    .filter((s) => s.startsWith(SCOPE_PREFIX))
    .map((s) => s.slice(SCOPE_PREFIX.length));
}

/** Groups whose documented time filters (startTime/endTime) apply: My Activity, Chrome history, Play. */
export function supportsTimeFilter(group: string): boolean {
  return group.startsWith('myactivity.') || group === 'chrome.history' || group.startsWith('play.');
}
