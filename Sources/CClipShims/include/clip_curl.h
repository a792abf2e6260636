#ifndef CLIP_CURL_H
#define CLIP_CURL_H
#include <curl/curl.h>

/// libcurl is loaded on first use (dlopen), not linked: most commands (the hook above all, which runs at every
/// container start with a cold page cache) never talk to a registry, and libcurl's ~25 dependencies cost tens of
/// milliseconds to load. Returns NULL once libcurl is loaded and initialised, else what went wrong. Call it before
/// any other clip_curl_ function; it is cheap after the first call.
const char *clip_curl_load(void);

/// Starts clip_curl_load on a detached thread; exit() waits for a load under way (and cancels one not begun), since
/// the libraries' destructors must not run while it is inside them. Returns 0, or an error number (nothing started).
int clip_curl_load_in_background(void);

CURL *clip_curl_easy_init(void);
void clip_curl_easy_cleanup(CURL *handle);
void clip_curl_easy_reset(CURL *handle);
CURLcode clip_curl_easy_perform(CURL *handle);
const char *clip_curl_easy_strerror(CURLcode code);
struct curl_slist *clip_curl_slist_append(struct curl_slist *list, const char *text);
void clip_curl_slist_free_all(struct curl_slist *list);

/// curl_easy_setopt and curl_easy_getinfo are variadic: one typed wrapper per argument kind.
CURLcode clip_curl_set_long(CURL *handle, CURLoption option, long value);
CURLcode clip_curl_set_string(CURL *handle, CURLoption option, const char *value);
CURLcode clip_curl_set_pointer(CURL *handle, CURLoption option, void *value);
CURLcode clip_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*clip_curl_data_callback)(char *data, size_t size, size_t count, void *context);
CURLcode clip_curl_set_callback(CURL *handle, CURLoption option, clip_curl_data_callback callback);

CURLcode clip_curl_get_long(CURL *handle, CURLINFO info, long *value);

#endif
