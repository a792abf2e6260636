#ifndef CLIP_CURL_H
#define CLIP_CURL_H
#include <curl/curl.h>

/// curl_easy_setopt and curl_easy_getinfo are variadic: one typed wrapper per argument kind.
CURLcode clip_curl_set_long(CURL *handle, CURLoption option, long value);
CURLcode clip_curl_set_string(CURL *handle, CURLoption option, const char *value);
CURLcode clip_curl_set_pointer(CURL *handle, CURLoption option, void *value);
CURLcode clip_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*clip_curl_data_callback)(char *data, size_t size, size_t count, void *context);
CURLcode clip_curl_set_callback(CURL *handle, CURLoption option, clip_curl_data_callback callback);

CURLcode clip_curl_get_long(CURL *handle, CURLINFO info, long *value);

#endif
