#include "clip_curl.h"
#include "clip_library.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/// The libcurl functions clip calls, found by clip_curl_load.
static struct {
  CURLcode (*global_init)(long flags);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *handle);
  void (*easy_reset)(CURL *handle);
  CURLcode (*easy_perform)(CURL *handle);
  const char *(*easy_strerror)(CURLcode code);
  CURLcode (*easy_setopt)(CURL *handle, CURLoption option, ...);
  CURLcode (*easy_getinfo)(CURL *handle, CURLINFO info, ...);
  struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
  void (*slist_free_all)(struct curl_slist *list);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void load(void) {
  const char *names[] = {"curl_global_init",  "curl_easy_init",    "curl_easy_cleanup", "curl_easy_reset",
                         "curl_easy_perform", "curl_easy_strerror", "curl_easy_setopt", "curl_easy_getinfo",
                         "curl_slist_append", "curl_slist_free_all"};
  void **const slots[] = {(void **)&api.global_init,   (void **)&api.easy_init,     (void **)&api.easy_cleanup,
                          (void **)&api.easy_reset,    (void **)&api.easy_perform,  (void **)&api.easy_strerror,
                          (void **)&api.easy_setopt,   (void **)&api.easy_getinfo,  (void **)&api.slist_append,
                          (void **)&api.slist_free_all};
  if (!clip_library_load("libcurl.so.4", names, slots, sizeof names / sizeof *names, load_error, sizeof load_error))
    return;
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    snprintf(load_error, sizeof load_error, "libcurl: curl_global_init failed");
}

const char *clip_curl_load(void) {
  pthread_once(&load_once, load);
  return load_error[0] ? load_error : NULL;
}

/// The background load's progress, so that exit() never runs the libraries' destructors (libcrypto's, gnutls's)
/// while that thread is inside dlopen or curl_global_init: that crashed a daemon failing at start.
static pthread_mutex_t background_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t background_done = PTHREAD_COND_INITIALIZER;
static enum { background_idle, background_running, background_finished, background_cancelled } background_state;

static void *background_load(void *unused) {
  (void)unused;
  pthread_mutex_lock(&background_lock);
  const int cancelled = background_state == background_cancelled;
  if (!cancelled) background_state = background_running;
  pthread_mutex_unlock(&background_lock);
  if (cancelled) return NULL;
  clip_curl_load();
  pthread_mutex_lock(&background_lock);
  background_state = background_finished;
  pthread_cond_broadcast(&background_done);
  pthread_mutex_unlock(&background_lock);
  return NULL;
}

/// At exit: a load not begun yet never begins; one under way is waited for.
static void settle_background_load(void) {
  pthread_mutex_lock(&background_lock);
  if (background_state == background_idle) background_state = background_cancelled;
  while (background_state == background_running) pthread_cond_wait(&background_done, &background_lock);
  pthread_mutex_unlock(&background_lock);
}

static pthread_once_t settle_registered = PTHREAD_ONCE_INIT;
static int settle_registration;
static void register_settle(void) { settle_registration = atexit(settle_background_load); }

int clip_curl_load_in_background(void) {
  pthread_once(&settle_registered, register_settle);
  if (settle_registration != 0) return settle_registration;
  pthread_t thread;
  const int error = pthread_create(&thread, NULL, background_load, NULL);
  if (error == 0) pthread_detach(thread);
  return error;
}

CURL *clip_curl_easy_init(void) { return api.easy_init(); }
void clip_curl_easy_cleanup(CURL *handle) { api.easy_cleanup(handle); }
void clip_curl_easy_reset(CURL *handle) { api.easy_reset(handle); }
CURLcode clip_curl_easy_perform(CURL *handle) { return api.easy_perform(handle); }
const char *clip_curl_easy_strerror(CURLcode code) { return api.easy_strerror(code); }
struct curl_slist *clip_curl_slist_append(struct curl_slist *list, const char *text) {
  return api.slist_append(list, text);
}
void clip_curl_slist_free_all(struct curl_slist *list) { api.slist_free_all(list); }

CURLcode clip_curl_set_long(CURL *handle, CURLoption option, long value) {
  return api.easy_setopt(handle, option, value);
}

CURLcode clip_curl_set_string(CURL *handle, CURLoption option, const char *value) {
  return api.easy_setopt(handle, option, value);
}

CURLcode clip_curl_set_pointer(CURL *handle, CURLoption option, void *value) {
  return api.easy_setopt(handle, option, value);
}

CURLcode clip_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
  return api.easy_setopt(handle, option, value);
}

CURLcode clip_curl_set_callback(CURL *handle, CURLoption option, clip_curl_data_callback callback) {
  return api.easy_setopt(handle, option, callback);
}

CURLcode clip_curl_get_long(CURL *handle, CURLINFO info, long *value) {
  return api.easy_getinfo(handle, info, value);
}
