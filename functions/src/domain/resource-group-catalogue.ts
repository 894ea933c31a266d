/**
 * What each Data Portability resource group holds, in words a person choosing what to export can
 * read: the catalogue GET /v1/resource-groups answers. Titles and descriptions follow Google's
 * "Data Portability API resource groups" reference, shortened. The group list itself stays in
 * resource-groups.ts; a test checks that this catalogue names every group there, no more.
 */
import { RESOURCE_GROUPS, scopeOf, supportsTimeFilter, type ResourceGroup } from './resource-groups';

export interface ResourceGroupEntry {
  id: ResourceGroup;
  title: string;
  description: string;
  /** The OAuth scope the consent asks for. */
  scope: string;
  /** The Google product the group belongs to (the web app groups its choices by it). */
  product: string;
  /** Whether `startTime`/`endTime` filter the export (others always export whole). */
  timeFilter: boolean;
}

/** Product names by the group id's first segment. */
export const PRODUCTS: Record<string, string> = {
  businessmessaging: 'Business Messages',
  chrome: 'Chrome',
  discover: 'Discover',
  maps: 'Maps',
  myactivity: 'My Activity',
  mymaps: 'My Maps',
  order_reserve: 'Orders and reservations',
  play: 'Google Play',
  saved: 'Saved',
  search_ugc: 'Search contributions',
  searchnotifications: 'Search notifications',
  shopping: 'Shopping',
  streetview: 'Street View',
  youtube: 'YouTube',
};

const TEXT: Record<ResourceGroup, [title: string, description: string]> = {
  'businessmessaging.conversations': ['Business Messages conversations', 'Your chats with businesses through Business Messages.'],
  'chrome.autofill': ['Chrome autofill', 'Addresses and other form entries Chrome fills in for you.'],
  'chrome.bookmarks': ['Chrome bookmarks', 'Your bookmarks and their folders.'],
  'chrome.dictionary': ['Chrome dictionary', 'Words you added to Chrome\'s spell-check dictionary.'],
  'chrome.extensions': ['Chrome extensions', 'The extensions you installed.'],
  'chrome.history': ['Chrome history', 'Pages you visited in Chrome while signed in.'],
  'chrome.reading_list': ['Chrome reading list', 'Pages you saved to read later.'],
  'chrome.settings': ['Chrome settings', 'Your Chrome preferences.'],
  'discover.follows': ['Discover follows', 'Topics and sources you follow in Discover.'],
  'discover.likes': ['Discover likes', 'Stories you liked in Discover.'],
  'discover.not_interested': ['Discover "not interested"', 'Stories and sources you marked as not interesting.'],
  'maps.aliased_places': ['Labelled places', 'Places you named, such as Home and Work.'],
  'maps.commute_routes': ['Commute routes', 'The routes you commute on.'],
  'maps.commute_settings': ['Commute settings', 'How and when you commute.'],
  'maps.ev_profile': ['Electric vehicle profile', 'Your electric vehicle and its plugs.'],
  'maps.factual_contributions': ['Place edits', 'Facts you added or corrected about places.'],
  'maps.offering_contributions': ['Menu and product contributions', 'Dishes and products you added to places.'],
  'maps.photos_videos': ['Maps photos and videos', 'Photos and videos you shared on Maps.'],
  'maps.questions_answers': ['Maps questions and answers', 'Questions you asked and answered about places.'],
  'maps.reviews': ['Maps reviews', 'Your reviews of places.'],
  'maps.starred_places': ['Starred places', 'Places you starred.'],
  'myactivity.maps': ['Maps activity', 'Your searches and directions in Maps.'],
  'myactivity.myadcenter': ['My Ad Center activity', 'Ads you saw and what you did with them.'],
  'myactivity.play': ['Google Play activity', 'Apps and content you looked at and used in Google Play.'],
  'myactivity.search': ['Search activity', 'What you searched for on Google.'],
  'myactivity.shopping': ['Shopping activity', 'Products you looked at and searched for.'],
  'myactivity.youtube': ['YouTube activity', 'Videos you watched and searched for on YouTube.'],
  'mymaps.maps': ['My Maps', 'Maps you made with My Maps.'],
  'order_reserve.purchases_reservations': ['Purchases and reservations', 'Orders and bookings made through Google.'],
  'play.devices': ['Google Play devices', 'The devices you use with Google Play.'],
  'play.grouping': ['Google Play groups', 'Family and other groups you share Google Play with.'],
  'play.installs': ['Google Play installs', 'The apps you installed.'],
  'play.library': ['Google Play library', 'Books, films and other content you own.'],
  'play.playpoints': ['Google Play Points', 'Your Play Points and what you used them for.'],
  'play.promotions': ['Google Play promotions', 'Offers and promotions you received.'],
  'play.purchases': ['Google Play purchases', 'What you bought in Google Play.'],
  'play.redemptions': ['Google Play redemptions', 'Gift cards and codes you redeemed.'],
  'play.subscriptions': ['Google Play subscriptions', 'Your subscriptions through Google Play.'],
  'play.usersettings': ['Google Play settings', 'Your Google Play preferences.'],
  'saved.collections': ['Saved collections', 'Links, images and places you saved to collections.'],
  'search_ugc.media.reviews_and_stars': ['Media reviews and ratings', 'Films, shows and books you rated or reviewed in Search.'],
  'search_ugc.media.streaming_video_providers': ['Streaming services', 'The streaming services you told Search you use.'],
  'search_ugc.media.thumbs': ['Media likes and dislikes', 'Films and shows you gave a thumbs up or down.'],
  'search_ugc.media.watched': ['Watched films and shows', 'What you marked as watched in Search.'],
  'searchnotifications.settings': ['Search notification settings', 'Which notifications Search sends you.'],
  'searchnotifications.subscriptions': ['Search notification subscriptions', 'Topics Search notifies you about.'],
  'shopping.addresses': ['Shopping addresses', 'Addresses saved for Google Shopping.'],
  'shopping.reviews': ['Shopping reviews', 'Your reviews of products and merchants.'],
  'streetview.imagery': ['Street View imagery', 'Street View images you published.'],
  'youtube.channel': ['YouTube channel', 'Your channel\'s details and settings.'],
  'youtube.comments': ['YouTube comments', 'Comments you wrote on YouTube.'],
  'youtube.live_chat': ['YouTube live chat', 'Messages you sent in live chats.'],
  'youtube.music': ['YouTube Music', 'Your YouTube Music library and uploads.'],
  'youtube.playable': ['YouTube Playables', 'Your progress in YouTube Playables games.'],
  'youtube.posts': ['YouTube posts', 'Posts you published on your channel.'],
  'youtube.private_playlists': ['Private playlists', 'Your private YouTube playlists.'],
  'youtube.private_videos': ['Private videos', 'Your private YouTube videos.'],
  'youtube.public_playlists': ['Public playlists', 'Your public YouTube playlists.'],
  'youtube.public_videos': ['Public videos', 'Your public YouTube videos.'],
  'youtube.shopping': ['YouTube Shopping', 'Products you tagged and stores you linked.'],
  'youtube.subscriptions': ['YouTube subscriptions', 'The channels you subscribe to.'],
  'youtube.unlisted_playlists': ['Unlisted playlists', 'Your unlisted YouTube playlists.'],
  'youtube.unlisted_videos': ['Unlisted videos', 'Your unlisted YouTube videos.'],
};

export function productOf(group: string): string {
  const head = group.split('.')[0] ?? group;
  return PRODUCTS[head] ?? head;
}

/** Every group, in the order of RESOURCE_GROUPS (grouped by product already: ids start with it). */
export const RESOURCE_GROUP_CATALOGUE: readonly ResourceGroupEntry[] = RESOURCE_GROUPS.map((id) => ({
  id,
  title: TEXT[id][0],
  description: TEXT[id][1],
  scope: scopeOf(id),
  product: productOf(id),
  timeFilter: supportsTimeFilter(id),
}));
